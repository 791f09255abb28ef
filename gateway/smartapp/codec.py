"""SmartApp commands and actions: wire JSON (seeds 002, 004; salutejs systemMessage.ts) <-> typed protos.

The wire format is not proto3 JSON: a `type` discriminator, snake_case keys outside, camelCase
inside `app_info`, lower-case permission names, defaults that are implied when absent. Presence is
kept (`optional` fields, set-but-empty Structs), unknown keys and types are kept (`extra_json`,
`other`) and free-form JSON is kept exactly (`*_json`), so JSON -> proto -> JSON gives back the
original. Readers refuse only what the typed fields cannot hold; writers refuse what the wire
requires and the proto leaves empty.
"""

from __future__ import annotations

from typing import Any

from smartpush.gateway.v1 import permission_pb2, smartapp_pb2

from gateway.smartapp.codec_error import CodecError, fields_under
from gateway.smartapp.passthrough import MISSING, Json, exact_or_struct, extra_of, fill, merge_extra

__all__ = ["CodecError", "fields_under"]

PERMISSIONS: dict[str, int] = {
    "geo": permission_pb2.PERMISSION_TYPE_GEO,
    "read_contacts": permission_pb2.PERMISSION_TYPE_READ_CONTACTS,
    "record_audio": permission_pb2.PERMISSION_TYPE_RECORD_AUDIO,
    "push": permission_pb2.PERMISSION_TYPE_PUSH,
}
PERMISSION_NAMES = {v: k for k, v in PERMISSIONS.items()}
PERMISSION_STATUSES: dict[str, int] = {
    "granted": smartapp_pb2.PERMISSION_STATUS_GRANTED,
    "denied_once": smartapp_pb2.PERMISSION_STATUS_DENIED_ONCE,
    "denied_permanently": smartapp_pb2.PERMISSION_STATUS_DENIED_PERMANENTLY,
}
_APP_INFO = (
    ("projectId", "project_id"),
    ("applicationId", "application_id"),
    ("appversionId", "appversion_id"),
    ("systemName", "system_name"),
    ("frontendType", "frontend_type"),
    ("frontendEndpoint", "frontend_endpoint"),
    ("frontendStateId", "frontend_state_id"),
    ("affiliationType", "affiliation_type"),
)
_MODES = {
    "background": smartapp_pb2.SERVER_ACTION_MODE_BACKGROUND,
    "foreground": smartapp_pb2.SERVER_ACTION_MODE_FOREGROUND,
}
_MODE_NAMES = {v: k for k, v in _MODES.items()}
_OPERATOR = {
    "open_chat": smartapp_pb2.OPERATOR_CARD_ACTION_OPEN_CHAT,
    "close_widget": smartapp_pb2.OPERATOR_CARD_ACTION_CLOSE_WIDGET,
}
_OPERATOR_NAMES = {v: k for k, v in _OPERATOR.items()}
ACTION_TYPES = (
    "text",
    "deep_link",
    "server_action",
    "send_contact_phone",
    "copy_text_to_buffer",
    "open_keyboard",
    "share_text",
    "start_smart_search",
)
COMMAND_TYPES = (
    "action",
    "request_permissions",
    "smart_app_data",
    "close_app",
    "payment_invoice",
    "do_nothing",
    "smart_app_error",
    "transfer_to_operator_action",
)
_INT64 = 2**63


def _obj(value: Any, path: str) -> Json:
    if not isinstance(value, dict):
        raise CodecError(path, "must be an object")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise CodecError(path, "must be a string")
    return value


def _required(value: str, path: str) -> str:
    if not value:
        raise CodecError(path, "required")
    return value


def _int(value: Any, path: str, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(path, "must be an integer")
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise CodecError(path, f"out of range for a {bits}-bit integer")
    return value


def int32(value: Any, path: str) -> int:
    """A JSON integer that must fit the proto int32 it is stored in."""
    return _int(value, path, 32)


def permission_names(permissions: Any, path: str) -> list[str]:
    """Wire names of permission types; an unknown or UNSPECIFIED number is the caller's error."""
    names = []
    for i, p in enumerate(permissions):
        name = PERMISSION_NAMES.get(p)
        if name is None:
            raise CodecError(f"{path}[{i}]", f"not a known PermissionType ({p}); use one of {sorted(PERMISSIONS)}")
        names.append(name)
    return names


def _type(data: Json, path: str) -> str:
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise CodecError(f"{path}type", "required string")
    return kind


def _other_type(kind: str, modelled: tuple[str, ...], path: str) -> str:
    if not kind:
        raise CodecError(path, "required")
    if kind in modelled:
        raise CodecError(path, f"{kind!r} is modelled; set that case instead")
    return kind


# --- app_info ------------------------------------------------------------------------------------
def decode_app_info(obj: Any, path: str) -> smartapp_pb2.AppInfo:
    data = _obj(obj, path)
    return smartapp_pb2.AppInfo(
        **{field: _str(data[key], f"{path}.{key}") for key, field in _APP_INFO if key in data},
        extra_json=extra_of(data, (k for k, _ in _APP_INFO)),
    )


def encode_app_info(info: smartapp_pb2.AppInfo, path: str) -> Json:
    out = {key: getattr(info, field) for key, field in _APP_INFO if getattr(info, field)}
    return merge_extra(out, info.extra_json, f"{path}.extra_json")


# --- actions -------------------------------------------------------------------------------------
def _run_app(body: Json, path: str) -> smartapp_pb2.RunApp:
    run = smartapp_pb2.RunApp(
        app_info=decode_app_info(body["app_info"], f"{path}.app_info"),
        extra_json=extra_of(body, ("action_id", "app_info", "payload")),
    )
    if "action_id" in body:
        run.action_id = _str(body["action_id"], f"{path}.action_id")
    if "payload" in body:
        fill(body["payload"], run.payload, lambda text: setattr(run, "payload_json", text))
    return run


def _server_action(data: Json, p: str) -> smartapp_pb2.ServerAction:
    server = smartapp_pb2.ServerAction()
    if "message_name" in data:
        server.message_name = _str(data["message_name"], f"{p}message_name")
    mode = data.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise CodecError(f"{p}mode", "must be a string")
    server.mode = _MODES.get(mode or "", smartapp_pb2.SERVER_ACTION_MODE_UNSPECIFIED)
    if "server_action" not in data:
        raise CodecError(f"{p}server_action", "required")
    body = _obj(data["server_action"], f"{p}server_action")
    if server.message_name == "RUN_APP" and isinstance(body.get("app_info"), dict):
        server.run_app.CopyFrom(_run_app(body, f"{p}server_action"))
    else:
        fill(body, server.data, lambda text: setattr(server, "data_json", text))
    return server


def _server_action_modelled(data: Json) -> tuple[str, ...]:
    # An unknown `mode` value stays in extra_json, so it is written back as it came.
    known_mode = data.get("mode") in _MODES
    return ("type", "message_name", "server_action", *(("mode",) if known_mode else ()))


def decode_action(obj: Any, path: str = "") -> smartapp_pb2.Action:
    data = _obj(obj, path or "action")
    p = f"{path}." if path else ""
    kind = _type(data, p)
    action = smartapp_pb2.Action()
    modelled: tuple[str, ...] = ("type",)
    if kind == "text":
        modelled = ("type", "text", "should_send_to_backend")
        action.text.text = _str(data.get("text"), f"{p}text")
        if "should_send_to_backend" in data:
            flag = data["should_send_to_backend"]
            if not isinstance(flag, bool):
                raise CodecError(f"{p}should_send_to_backend", "must be a boolean")
            action.text.should_send_to_backend = flag
    elif kind == "deep_link":
        modelled = ("type", "deep_link")
        action.deep_link.deep_link = _str(data.get("deep_link"), f"{p}deep_link")
    elif kind == "server_action":
        modelled = _server_action_modelled(data)
        action.server_action.CopyFrom(_server_action(data, p))
    elif kind == "send_contact_phone":
        modelled = ("type", "send_contact_phone", "template")
        action.send_contact_phone.contact_id = _int(data.get("send_contact_phone"), f"{p}send_contact_phone", 64)
        if "template" in data:
            action.send_contact_phone.template = _str(data["template"], f"{p}template")
    elif kind in ("copy_text_to_buffer", "share_text"):
        modelled = ("type", "text")
        getattr(action, kind).text = _str(data.get("text"), f"{p}text")
    elif kind == "open_keyboard":
        action.open_keyboard.SetInParent()
    elif kind == "start_smart_search":
        modelled = ("type", "start_smart_search")
        search = _obj(data.get("start_smart_search"), f"{p}start_smart_search")
        action.start_smart_search.query = _str(search.get("query"), f"{p}start_smart_search.query")
        if "timeoutMS" in search:
            action.start_smart_search.timeout_ms = _int(search["timeoutMS"], f"{p}start_smart_search.timeoutMS", 64)
        action.start_smart_search.extra_json = extra_of(search, ("query", "timeoutMS"))
    else:
        action.other.type = kind
    action.extra_json = extra_of(data, modelled)
    return action


def _encode_server_action(server: smartapp_pb2.ServerAction, extra: str) -> Json:
    out: Json = {"type": "server_action"}
    if server.HasField("message_name"):
        out["message_name"] = server.message_name
    if server.mode:
        out["mode"] = _MODE_NAMES[server.mode]
    if server.WhichOneof("body") == "run_app":
        run = server.run_app
        if not run.HasField("app_info") or not (run.app_info.project_id or run.app_info.system_name):
            raise CodecError("server_action.run_app.app_info", "required: projectId or systemName of the smartapp")
        body: Json = {}
        if run.HasField("action_id"):
            body["action_id"] = run.action_id
        body["app_info"] = encode_app_info(run.app_info, "server_action.run_app.app_info")
        payload = exact_or_struct(
            run.payload_json,
            run.payload if run.HasField("payload") else None,
            "server_action.run_app.payload_json",
            "server_action.run_app.payload",
        )
        if payload is not MISSING:
            body["payload"] = payload
        out["server_action"] = merge_extra(body, run.extra_json, "server_action.run_app.extra_json")
    else:
        data = exact_or_struct(
            server.data_json,
            server.data if server.HasField("data") else None,
            "server_action.data_json",
            "server_action.data",
        )
        if data is MISSING:
            data = {}
        if not isinstance(data, dict):
            raise CodecError("server_action.data_json", "must be a JSON object")
        out["server_action"] = data
    return merge_extra(out, extra, "extra_json")


def encode_action(action: smartapp_pb2.Action) -> Json:
    which = action.WhichOneof("action")
    out: Json
    if which == "text":
        out = {"type": "text", "text": _required(action.text.text, "text.text")}
        if action.text.HasField("should_send_to_backend"):
            out["should_send_to_backend"] = action.text.should_send_to_backend
    elif which == "deep_link":
        out = {"type": "deep_link", "deep_link": _required(action.deep_link.deep_link, "deep_link.deep_link")}
    elif which == "server_action":
        return _encode_server_action(action.server_action, action.extra_json)
    elif which == "send_contact_phone":
        phone = action.send_contact_phone
        if not phone.HasField("contact_id"):
            raise CodecError("send_contact_phone.contact_id", "required")
        out = {"type": "send_contact_phone", "send_contact_phone": phone.contact_id}
        if phone.HasField("template"):
            out["template"] = phone.template
    elif which in ("copy_text_to_buffer", "share_text"):
        out = {"type": which, "text": _required(getattr(action, which).text, f"{which}.text")}
    elif which == "open_keyboard":
        out = {"type": "open_keyboard"}
    elif which == "start_smart_search":
        search = action.start_smart_search
        body: Json = {"query": _required(search.query, "start_smart_search.query")}
        if search.HasField("timeout_ms"):
            body["timeoutMS"] = search.timeout_ms
        out = {
            "type": "start_smart_search",
            "start_smart_search": merge_extra(body, search.extra_json, "start_smart_search.extra_json"),
        }
    elif which == "other":
        out = {"type": _other_type(action.other.type, ACTION_TYPES, "other.type")}
    else:
        raise CodecError("action", "no action set")
    return merge_extra(out, action.extra_json, "extra_json")


# --- commands ------------------------------------------------------------------------------------
def _permissions(names: Any) -> list[int]:
    if not isinstance(names, list):
        raise CodecError("permissions", "must be an array")
    perms = []
    for i, name in enumerate(names):
        if name not in PERMISSIONS:
            raise CodecError(f"permissions[{i}]", f"unknown permission {str(name)[:40]!r}")
        perms.append(PERMISSIONS[name])
    return perms


def decode_command(obj: Any) -> smartapp_pb2.Command:
    data = _obj(obj, "command")
    kind = _type(data, "")
    command = smartapp_pb2.Command()
    modelled: tuple[str, ...] = ("type",)
    if kind == "action":
        modelled = ("type", "action")
        command.action.action.CopyFrom(decode_action(data.get("action"), "action"))
    elif kind == "request_permissions":
        modelled = ("type", "permissions")
        command.request_permissions.permissions.extend(_permissions(data.get("permissions")))  # type: ignore[arg-type]
    elif kind == "smart_app_data":
        modelled = ("type", "smart_app_data")
        cmd = command.smart_app_data
        cmd.SetInParent()
        if "smart_app_data" in data:
            fill(data["smart_app_data"], cmd.smart_app_data, lambda text: setattr(cmd, "smart_app_data_json", text))
    elif kind == "payment_invoice":
        modelled = ("type", "payment_invoice")
        invoice = command.payment_invoice
        invoice.SetInParent()
        if "payment_invoice" in data:
            body = _obj(data["payment_invoice"], "payment_invoice")
            if "invoice_id" in body:
                invoice.invoice_id = _str(body["invoice_id"], "payment_invoice.invoice_id")
            fill(body, invoice.payment_invoice, lambda text: setattr(invoice, "payment_invoice_json", text))
    elif kind in ("close_app", "do_nothing"):
        getattr(command, kind).SetInParent()
    elif kind == "smart_app_error":
        modelled = ("type", "smart_app_error")
        error = _obj(data.get("smart_app_error"), "smart_app_error")
        command.smart_app_error.code = int32(error.get("code"), "smart_app_error.code")
        command.smart_app_error.description = _str(error.get("description", ""), "smart_app_error.description")
        command.smart_app_error.extra_json = extra_of(error, ("code", "description"))
    elif kind == "transfer_to_operator_action":
        what = data.get("action")
        known = isinstance(what, str) and what in _OPERATOR
        modelled = ("type", "message_id", *(("action",) if known else ()))
        transfer = command.transfer_to_operator
        transfer.SetInParent()
        if known:
            transfer.action = _OPERATOR[what]  # type: ignore[index]
        if "message_id" in data:
            transfer.message_id = _str(data["message_id"], "message_id")
    else:
        command.other.type = kind
    command.extra_json = extra_of(data, modelled)
    return command


def _encode_payment_invoice(cmd: smartapp_pb2.PaymentInvoiceCommand) -> Json:
    out: Json = {"type": "payment_invoice"}
    body = exact_or_struct(
        cmd.payment_invoice_json,
        cmd.payment_invoice if cmd.HasField("payment_invoice") else None,
        "payment_invoice.payment_invoice_json",
        "payment_invoice.payment_invoice",
    )
    if body is MISSING:
        if not cmd.invoice_id:
            return out
        body = {}
    if not isinstance(body, dict):
        raise CodecError("payment_invoice.payment_invoice_json", "must be a JSON object")
    if cmd.invoice_id:
        if body.get("invoice_id", cmd.invoice_id) != cmd.invoice_id:
            raise CodecError("payment_invoice.invoice_id", "differs from the invoice_id in the invoice object")
        body["invoice_id"] = cmd.invoice_id
    out["payment_invoice"] = body
    return out


def encode_command(command: smartapp_pb2.Command) -> Json:
    which = command.WhichOneof("command")
    out: Json
    if which == "action":
        with fields_under("action.action."):
            out = {"type": "action", "action": encode_action(command.action.action)}
    elif which == "request_permissions":
        names = permission_names(command.request_permissions.permissions, "request_permissions.permissions")
        out = {"type": "request_permissions", "permissions": names}
    elif which == "smart_app_data":
        cmd = command.smart_app_data
        out = {"type": "smart_app_data"}
        data = exact_or_struct(
            cmd.smart_app_data_json,
            cmd.smart_app_data if cmd.HasField("smart_app_data") else None,
            "smart_app_data.smart_app_data_json",
            "smart_app_data.smart_app_data",
        )
        if data is not MISSING:
            out["smart_app_data"] = data
    elif which == "payment_invoice":
        out = _encode_payment_invoice(command.payment_invoice)
    elif which in ("close_app", "do_nothing"):
        out = {"type": which}
    elif which == "smart_app_error":
        error = command.smart_app_error
        body = {"code": error.code, "description": error.description}
        body = merge_extra(body, error.extra_json, "smart_app_error.extra_json")
        out = {"type": "smart_app_error", "smart_app_error": body}
    elif which == "transfer_to_operator":
        transfer = command.transfer_to_operator
        out = {"type": "transfer_to_operator_action"}
        if transfer.action:
            out["action"] = _OPERATOR_NAMES[transfer.action]
        out["message_id"] = _required(transfer.message_id, "transfer_to_operator.message_id")
    elif which == "other":
        out = {"type": _other_type(command.other.type, COMMAND_TYPES, "other.type")}
    else:
        raise CodecError("command", "no command set")
    merge_extra(out, command.extra_json, "extra_json")
    if which == "transfer_to_operator" and "action" not in out:
        raise CodecError("transfer_to_operator.action", "required: OPEN_CHAT or CLOSE_WIDGET")
    return out


# --- incoming messages ---------------------------------------------------------------------------
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


def decode_permission_states(obj: Any) -> list[smartapp_pb2.PermissionState]:
    """`payload.meta.permissions` of a message (or of its payload, its meta, or the array itself)."""
    data, path = obj, ""
    for key in ("payload", "meta", "permissions"):
        if isinstance(data, dict) and key in data:
            data, path = data[key], f"{path}{key}."
    if isinstance(data, dict):
        return []  # no permissions anywhere: the message says nothing about them
    if not isinstance(data, list):
        raise CodecError(path.rstrip(".") or "json", "must be an array")
    states = []
    for i, entry in enumerate(data):
        item = _obj(entry, f"{path.rstrip('.')}[{i}]")
        raw_type = _str(item.get("type", ""), f"{path.rstrip('.')}[{i}].type")
        raw_status = _str(item.get("status", ""), f"{path.rstrip('.')}[{i}].status")
        states.append(
            smartapp_pb2.PermissionState(
                type=PERMISSIONS.get(raw_type, permission_pb2.PERMISSION_TYPE_UNSPECIFIED),  # type: ignore[arg-type]
                status=PERMISSION_STATUSES.get(raw_status, smartapp_pb2.PERMISSION_STATUS_UNSPECIFIED),  # type: ignore[arg-type]
                raw_type=raw_type,
                raw_status=raw_status,
            )
        )
    return states
