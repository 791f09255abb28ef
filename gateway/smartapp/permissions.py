"""Runtime push consent messages (reference §9): build GET_RUNTIME_PERMISSIONS, read the answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from smartpush.gateway.v1 import permission_pb2, smartapp_pb2

from gateway.smartapp.codec import encode_command, int32, permission_names
from gateway.smartapp.codec_error import CodecError
from gateway.smartapp.json_input import dump_json, load_json

SERVICE_PUSH = "service_push"
STATUS_BY_CODE = {
    1: permission_pb2.RUNTIME_PERMISSION_STATUS_GRANTED,
    101: permission_pb2.RUNTIME_PERMISSION_STATUS_DENIED_BY_USER,
    102: permission_pb2.RUNTIME_PERMISSION_STATUS_SMARTAPP_NOT_ALLOWED,
}


def get_runtime_permissions(session_id: str, message_id: int, user: permission_pb2.UserIds) -> dict[str, Any]:
    uuid: dict[str, str] = {}
    if user.user_channel:
        uuid["userChannel"] = user.user_channel
    if user.sub:
        uuid["sub"] = user.sub
    if user.user_id:
        uuid["userId"] = user.user_id
    return {
        "messageName": "GET_RUNTIME_PERMISSIONS",
        "sessionId": session_id,
        "messageId": message_id,
        "uuid": uuid,
        "payload": {"server_action": {"parameters": {"need_actions": {"types": [SERVICE_PUSH]}}}},
    }


def request_permissions_command(permissions: Sequence[int]) -> smartapp_pb2.Command:
    perms = list(permissions) or [permission_pb2.PERMISSION_TYPE_PUSH]
    return smartapp_pb2.Command(request_permissions=smartapp_pb2.RequestPermissionsCommand(permissions=perms))  # type: ignore[arg-type]


def request_permissions_json(permissions: Sequence[int]) -> str:
    permission_names(permissions, "permissions")  # refuse unknown numbers with the request's field path
    return dump_json(encode_command(request_permissions_command(permissions)))


def load_message(raw: str) -> dict[str, Any]:
    data = load_json(raw, "message_json")
    if not isinstance(data, dict):
        raise CodecError("message_json", "must be a JSON object")
    return data


def _user(data: dict[str, Any]) -> permission_pb2.UserIds:
    raw = data.get("uuid") or {}
    if not isinstance(raw, dict):
        raise CodecError("message_json.uuid", "must be an object")
    return permission_pb2.UserIds(
        user_id=str(raw.get("userId", "")), sub=str(raw.get("sub", "")), user_channel=str(raw.get("userChannel", ""))
    )


def parse_take_runtime_permissions(data: dict[str, Any]) -> permission_pb2.RuntimePermissionsResult:
    if data.get("messageName") != "TAKE_RUNTIME_PERMISSIONS":
        raise CodecError("message_json.messageName", "must be TAKE_RUNTIME_PERMISSIONS")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise CodecError("message_json.payload", "required object")
    status = payload.get("status_code")
    if not isinstance(status, dict):
        raise CodecError("message_json.payload.status_code", "required object {code, description}")
    code = int32(status.get("code"), "message_json.payload.status_code.code")
    actions = payload.get("permitted_actions", [])
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise CodecError("message_json.payload.permitted_actions", "must be an array of strings")
    typed = STATUS_BY_CODE.get(code, permission_pb2.RUNTIME_PERMISSION_STATUS_UNSPECIFIED)
    message_id = data.get("messageId", "")
    return permission_pb2.RuntimePermissionsResult(
        permitted_actions=actions,
        status=typed,
        status_code=code,
        status_description=str(status.get("description", "")),
        user=_user(data),
        session_id=str(data.get("sessionId", "")),
        message_id=str(message_id),
        push_allowed=typed == permission_pb2.RUNTIME_PERMISSION_STATUS_GRANTED and SERVICE_PUSH in actions,
    )


@dataclass(frozen=True, slots=True)
class ConsentSignal:
    """What one incoming message says about push consent."""

    status: int
    push_allowed: bool
    source: str
    sub: str
    project_id: str


def consent_signal(data: dict[str, Any]) -> ConsentSignal | None:
    """TAKE_RUNTIME_PERMISSIONS gives a verdict; any other message with `service_push` in
    `payload.permitted_actions` shows consent (reference §9). Silence is not a revocation."""
    name = str(data.get("messageName", ""))
    payload = data.get("payload") if isinstance(data.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    app_info = payload.get("app_info") if isinstance(payload.get("app_info"), dict) else {}
    assert isinstance(app_info, dict)
    project = str(app_info.get("projectId", ""))
    sub = _user(data).sub
    if name == "TAKE_RUNTIME_PERMISSIONS":
        result = parse_take_runtime_permissions(data)
        return ConsentSignal(result.status, result.push_allowed, name, sub, project)
    actions = payload.get("permitted_actions")
    if isinstance(actions, list) and SERVICE_PUSH in actions:
        source = name[:64] or "unknown"
        return ConsentSignal(permission_pb2.RUNTIME_PERMISSION_STATUS_GRANTED, True, source, sub, project)
    return None
