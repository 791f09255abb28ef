"""SmartApp commands and actions: wire JSON (seeds 002, 004) <-> typed protos.

The wire format is not proto3 JSON: a `type` discriminator, snake_case keys outside,
camelCase inside `app_info`, lower-case permission names, defaults that are implied
when absent. Presence is kept (`optional` fields, set-but-empty Structs) so that
JSON -> proto -> JSON gives back the original.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from google.protobuf import json_format, struct_pb2
from smartpush.gateway.v1 import errors_pb2, permission_pb2, smartapp_pb2

from gateway.errors import FieldViolation, GatewayError

Json = dict[str, Any]


class CodecError(GatewayError):
    """Wire JSON (or a proto) the other side cannot represent; `path` names the offending key."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            errors_pb2.ERROR_REASON_INVALID_REQUEST,
            f"invalid request: {path}: {detail}",
            field_violations=(FieldViolation(path, detail),),
        )
        self.path = path
        self.detail = detail


@contextmanager
def fields_under(prefix: str) -> Iterator[None]:
    """Report codec errors with their path under the request field that held the JSON or proto."""
    try:
        yield
    except CodecError as err:
        raise CodecError(prefix + err.path if err.path else prefix.rstrip("."), err.detail) from None


PERMISSIONS: dict[str, int] = {
    "geo": permission_pb2.PERMISSION_TYPE_GEO,
    "read_contacts": permission_pb2.PERMISSION_TYPE_READ_CONTACTS,
    "record_audio": permission_pb2.PERMISSION_TYPE_RECORD_AUDIO,
    "push": permission_pb2.PERMISSION_TYPE_PUSH,
}
PERMISSION_NAMES = {v: k for k, v in PERMISSIONS.items()}
_APP_INFO = (("projectId", "project_id"), ("applicationId", "application_id"), ("appversionId", "appversion_id"))
_APP_INFO_ALL = (*_APP_INFO, ("systemName", "system_name"))


def _obj(value: Any, path: str) -> Json:
    if not isinstance(value, dict):
        raise CodecError(path, "must be an object")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise CodecError(path, "must be a string")
    return value


def _only(obj: Json, allowed: set[str], path: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise CodecError(f"{path}.{extra[0]}" if path else extra[0], "unknown key")


def _struct(value: Any, path: str) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    try:
        json_format.ParseDict(_obj(value, path), out)
    except (json_format.ParseError, ValueError):
        raise CodecError(path, "cannot be held as a JSON object") from None
    return out


def _plain(value: Any) -> Any:
    # Struct keeps every number as a double; give integral ones back as ints.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _unstruct(value: struct_pb2.Struct, path: str) -> Json:
    try:
        raw = json_format.MessageToDict(value)
    except ValueError:  # NaN or Infinity in a number_value: not JSON
        raise CodecError(path, "numbers must be finite (NaN and Infinity are not JSON)") from None
    plain = _plain(raw)
    assert isinstance(plain, dict)
    return plain


def int32(value: Any, path: str) -> int:
    """A JSON integer that must fit the proto int32 it is stored in."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(path, "must be an integer")
    if not -(2**31) <= value < 2**31:
        raise CodecError(path, "out of range for a 32-bit integer")
    return value


def permission_names(permissions: Any, path: str) -> list[str]:
    """Wire names of permission types; an unknown or UNSPECIFIED number is the caller's error."""
    names = []
    for i, p in enumerate(permissions):
        name = PERMISSION_NAMES.get(p)
        if name is None:
            raise CodecError(f"{path}[{i}]", f"not a known PermissionType ({p}); use one of {sorted(PERMISSIONS)}")
        names.append(name)
    return names


# --- actions -------------------------------------------------------------------------------------
def decode_app_info(obj: Any, path: str) -> smartapp_pb2.AppInfo:
    data = _obj(obj, path)
    _only(data, {k for k, _ in _APP_INFO_ALL}, path)
    return smartapp_pb2.AppInfo(
        **{field: _str(data[key], f"{path}.{key}") for key, field in _APP_INFO_ALL if key in data}
    )


def encode_app_info(info: smartapp_pb2.AppInfo) -> Json:
    return {key: getattr(info, field) for key, field in _APP_INFO_ALL if getattr(info, field)}


def _run_app(body: Json, path: str) -> smartapp_pb2.RunApp | None:
    if "app_info" not in body or set(body) - {"action_id", "app_info", "payload"}:
        return None  # not the RUN_APP shape: kept as a Struct, nothing lost
    run = smartapp_pb2.RunApp(app_info=decode_app_info(body["app_info"], f"{path}.app_info"))
    if "action_id" in body:
        run.action_id = _str(body["action_id"], f"{path}.action_id")
    if "payload" in body:
        run.payload.CopyFrom(_struct(body["payload"], f"{path}.payload"))
    return run


def decode_action(obj: Any, path: str = "") -> smartapp_pb2.Action:
    data = _obj(obj, path or "action")
    kind = data.get("type")
    p = f"{path}." if path else ""
    if kind == "text":
        _only(data, {"type", "text", "should_send_to_backend"}, path)
        text = smartapp_pb2.TextAction(text=_str(data.get("text"), f"{p}text"))
        if "should_send_to_backend" in data:
            flag = data["should_send_to_backend"]
            if not isinstance(flag, bool):
                raise CodecError(f"{p}should_send_to_backend", "must be a boolean")
            text.should_send_to_backend = flag
        return smartapp_pb2.Action(text=text)
    if kind == "deep_link":
        _only(data, {"type", "deep_link"}, path)
        return smartapp_pb2.Action(
            deep_link=smartapp_pb2.DeepLinkAction(deep_link=_str(data.get("deep_link"), f"{p}deep_link"))
        )
    if kind == "server_action":
        _only(data, {"type", "message_name", "server_action"}, path)
        server = smartapp_pb2.ServerAction()
        if "message_name" in data:
            server.message_name = _str(data["message_name"], f"{p}message_name")
        if "server_action" not in data:
            raise CodecError(f"{p}server_action", "required")
        body = _obj(data["server_action"], f"{p}server_action")
        run = _run_app(body, f"{p}server_action") if server.message_name == "RUN_APP" else None
        if run is not None:
            server.run_app.CopyFrom(run)
        else:
            server.data.CopyFrom(_struct(body, f"{p}server_action"))
        return smartapp_pb2.Action(server_action=server)
    raise CodecError(f"{p}type", f"unknown action type {str(kind)[:40]!r} (text, deep_link, server_action)")


def encode_action(action: smartapp_pb2.Action) -> Json:
    which = action.WhichOneof("action")
    if which == "text":
        out: Json = {"type": "text", "text": action.text.text}
        if action.text.HasField("should_send_to_backend"):
            out["should_send_to_backend"] = action.text.should_send_to_backend
        return out
    if which == "deep_link":
        return {"type": "deep_link", "deep_link": action.deep_link.deep_link}
    if which == "server_action":
        server = action.server_action
        out = {"type": "server_action"}
        if server.HasField("message_name"):
            out["message_name"] = server.message_name
        if server.WhichOneof("body") == "run_app":
            run = server.run_app
            body: Json = {}
            if run.HasField("action_id"):
                body["action_id"] = run.action_id
            body["app_info"] = encode_app_info(run.app_info)
            if run.HasField("payload"):
                body["payload"] = _unstruct(run.payload, "server_action.run_app.payload")
            out["server_action"] = body
        else:
            out["server_action"] = _unstruct(server.data, "server_action.data")
        return out
    raise CodecError("action", "no action set")


# --- commands ------------------------------------------------------------------------------------
def decode_command(obj: Any) -> smartapp_pb2.Command:
    data = _obj(obj, "command")
    kind = data.get("type")
    if kind == "action":
        _only(data, {"type", "action"}, "")
        return smartapp_pb2.Command(
            action=smartapp_pb2.ActionCommand(action=decode_action(data.get("action"), "action"))
        )
    if kind == "request_permissions":
        _only(data, {"type", "permissions"}, "")
        names = data.get("permissions")
        if not isinstance(names, list):
            raise CodecError("permissions", "must be an array")
        perms = []
        for i, name in enumerate(names):
            if name not in PERMISSIONS:
                raise CodecError(f"permissions[{i}]", f"unknown permission {str(name)[:40]!r}")
            perms.append(PERMISSIONS[name])
        return smartapp_pb2.Command(request_permissions=smartapp_pb2.RequestPermissionsCommand(permissions=perms))  # type: ignore[arg-type]
    if kind == "smart_app_data":
        _only(data, {"type", "smart_app_data"}, "")
        cmd = smartapp_pb2.SmartAppDataCommand()
        if "smart_app_data" in data:
            cmd.smart_app_data.CopyFrom(_struct(data["smart_app_data"], "smart_app_data"))
        return smartapp_pb2.Command(smart_app_data=cmd)
    if kind == "payment_invoice":
        _only(data, {"type", "payment_invoice"}, "")
        invoice = smartapp_pb2.PaymentInvoiceCommand()
        if "payment_invoice" in data:
            invoice.payment_invoice.CopyFrom(_struct(data["payment_invoice"], "payment_invoice"))
        return smartapp_pb2.Command(payment_invoice=invoice)
    if kind == "close_app":
        _only(data, {"type"}, "")
        return smartapp_pb2.Command(close_app=smartapp_pb2.CloseAppCommand())
    if kind == "do_nothing":
        _only(data, {"type"}, "")
        return smartapp_pb2.Command(do_nothing=smartapp_pb2.DoNothingCommand())
    raise CodecError(
        "type",
        f"unknown command type {str(kind)[:40]!r} "
        "(action, request_permissions, smart_app_data, close_app, payment_invoice, do_nothing)",
    )


def encode_command(command: smartapp_pb2.Command) -> Json:
    which = command.WhichOneof("command")
    if which == "action":
        return {"type": "action", "action": encode_action(command.action.action)}
    if which == "request_permissions":
        return {
            "type": "request_permissions",
            "permissions": permission_names(command.request_permissions.permissions, "request_permissions.permissions"),
        }
    if which == "smart_app_data":
        out: Json = {"type": "smart_app_data"}
        if command.smart_app_data.HasField("smart_app_data"):
            out["smart_app_data"] = _unstruct(command.smart_app_data.smart_app_data, "smart_app_data.smart_app_data")
        return out
    if which == "payment_invoice":
        out = {"type": "payment_invoice"}
        if command.payment_invoice.HasField("payment_invoice"):
            out["payment_invoice"] = _unstruct(
                command.payment_invoice.payment_invoice, "payment_invoice.payment_invoice"
            )
        return out
    if which in ("close_app", "do_nothing"):
        return {"type": which}
    raise CodecError("command", "no command set")


# --- PAY_DIALOG_FINISHED -------------------------------------------------------------------------
def decode_pay_dialog_finished(obj: Any) -> smartapp_pb2.PayDialogFinished:
    data = _obj(obj, "json")
    path = ""
    if "payload" in data:
        data, path = _obj(data["payload"], "payload"), "payload."
    if "server_action" in data:
        data, path = _obj(data["server_action"], f"{path}server_action"), f"{path}server_action."
    if data.get("action_id") != "PAY_DIALOG_FINISHED":
        raise CodecError(f"{path}action_id", "must be PAY_DIALOG_FINISHED")
    params = _obj(data.get("parameters"), f"{path}parameters")
    response = _obj(params.get("payment_response"), f"{path}parameters.payment_response")
    code = int32(response.get("response_code"), f"{path}parameters.payment_response.response_code")
    out = smartapp_pb2.PayDialogFinished(
        raw_response_code=code,
        response_code=code + 1 if 0 <= code <= 7 else 0,  # type: ignore[arg-type]
        invoice_id=str(response.get("invoice_id", "")),
    )
    if "app_info" in params:
        out.app_info.CopyFrom(decode_app_info(params["app_info"], f"{path}parameters.app_info"))
    return out
