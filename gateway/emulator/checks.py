"""The documented schema and limits of SmartPush send requests, as the emulator enforces them.

Independent of the gateway's own validation on purpose: it checks the JSON on the wire
against the reference (§2-§5), so a gateway mapping bug shows up as a SmartPush code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from gateway.emulator.state import EmulatorConfig

SURFACE_CHANNEL = {
    "COMPANION": "COMPANION_B2C",
    "SBOL": "SBOL",
    **{
        s: "B2C"
        for s in (
            "SBERBOX",
            "TIME",
            "TV_HUAWEI",
            "TV",
            "STARGATE",
            "SATELLITE",
            "SBERBOOM",
            "SBERBOOM_MINI",
            "SBERBOOM_R2",
        )
    },
}
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")
_ZONE = re.compile(r"^GMT[+-](0\d|1[0-4]):[0-5]\d$")
_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
_VARIABLE_KEYS = (("headerValues", 3), ("bodyValues", 10))
# Keys SmartPush documents (reference §3.3); the strict emulator refuses any other (1000).
_DESTINATION_KEYS = frozenset({"channel", "surface", "priority", "templateContent", "pushContent"})
_CONTENT_KEYS = frozenset({"id", "headerValues", "bodyValues", "mobileAppParameters", "deviceParameters", "timeFrame"})
_MOBILE_KEYS = frozenset({"buttonText", "deeplinkAndroid", "deeplinkIos", "androidVersion", "iosVersion", "imageLink"})
_DEVICE_KEYS = frozenset({"backgroundImageUri", "deviceSerialFilter", "productFilter"})
_FRAME_KEYS = frozenset({"startTime", "finishTime", "timeZone", "startDate", "endDate"})


def _unknown(obj: dict[str, Any], allowed: frozenset[str]) -> str | None:
    extra = sorted(set(obj) - allowed)
    return extra[0] if extra else None


@dataclass(slots=True)
class Verdict:
    """Per-destination status codes (0 = accepted) and `errors[]` entries."""

    codes: list[int]
    errors: list[dict[str, str]] = field(default_factory=list)


def _str(value: Any, limit: int | None = None) -> TypeGuard[str]:
    return isinstance(value, str) and (limit is None or len(value) <= limit)


def _destination(dest: Any, cfg: EmulatorConfig, project: str, errors: list[dict[str, str]], i: int) -> int:
    key = f"payload.deliveryConfig.destinations[{i}]"

    def fail(code: int, where: str, message: str) -> int:
        errors.append({"key": f"{key}.{where}", "message": message})
        return code

    if not isinstance(dest, dict):
        return fail(1001, "", "destination must be an object")
    strict = not cfg.lenient
    placement = "any" if cfg.lenient else cfg.time_frame_placement
    extra = _unknown(dest, _DESTINATION_KEYS | {"timeFrame"} if placement != "template_content" else _DESTINATION_KEYS)
    if extra == "timeFrame":
        return fail(1000, "timeFrame", "timeFrame belongs inside templateContent")
    if strict and extra is not None:
        return fail(1000, extra, "unknown key")
    if "pushContent" in dest and "templateContent" in dest:
        return fail(1001, "pushContent", "both a PushContent and a TemplateContent block")
    surface = dest.get("surface")
    if surface is None or surface == "":
        return fail(1005, "surface", "target surface is not defined")
    if not _str(surface, 128) or surface not in SURFACE_CHANNEL:
        return fail(1004, "surface", f"surface {str(surface)[:40]!r} does not exist")
    channel = dest.get("channel")
    if channel not in ("B2C", "COMPANION_B2C", "SBOL"):
        return fail(1004, "channel", "channel does not exist")
    if channel != SURFACE_CHANNEL[surface]:
        return fail(1004, "channel", f"channel {channel} does not serve surface {surface}")
    if "priority" in dest and (not isinstance(dest["priority"], int) or dest["priority"] < 0):
        return fail(1000, "priority", "priority must be a non-negative integer")
    content = dest.get("templateContent")
    if not isinstance(content, dict):
        return fail(1000, "templateContent", "templateContent is required")
    extra = _unknown(content, _CONTENT_KEYS if placement != "destination" else _CONTENT_KEYS - {"timeFrame"})
    if extra == "timeFrame":
        return fail(1000, "templateContent.timeFrame", "timeFrame belongs beside templateContent here")
    if strict and extra is not None:
        return fail(1000, f"templateContent.{extra}", "unknown key")
    tid = content.get("id")
    if not _str(tid, 36) or not tid:
        return fail(1000, "templateContent.id", "template id is required, at most 36 characters")
    for values_key, limit in _VARIABLE_KEYS:
        values = content.get(values_key, {})
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            return fail(1000, f"templateContent.{values_key}", "must be an object of strings")
        if len(values) > limit:
            return fail(1000, f"templateContent.{values_key}", f"at most {limit} variables")
    mobile, device = content.get("mobileAppParameters"), content.get("deviceParameters")
    if mobile is not None and device is not None:
        return fail(1006, "templateContent", "both mobileAppParameters and deviceParameters")
    if mobile is not None:
        code = _mobile(mobile, channel, strict, fail)
        if code:
            return code
    if device is not None:
        code = _device(device, channel, cfg, fail)
        if code:
            return code
    frame = content.get("timeFrame", dest.get("timeFrame"))
    if frame is not None:
        where = "templateContent.timeFrame" if "timeFrame" in content else "timeFrame"
        extra = _unknown(frame, _FRAME_KEYS) if isinstance(frame, dict) else None
        if strict and extra:
            return fail(1000, f"{where}.{extra}", "unknown key")
        code = _time_frame(frame)
        if code:
            return fail(code, where, "invalid time frame" if code == 1008 else "start after finish")
    template = cfg.templates.get(tid)
    if template is None or (template.projects and project not in template.projects):
        if cfg.strict_templates:
            return fail(1016, "templateContent.id", "template does not exist for this projectId")
    else:
        for values_key, names in (
            ("headerValues", template.header_variables),
            ("bodyValues", template.body_variables),
        ):
            if set(content.get(values_key, {})) != set(names):
                code = cfg.template_mismatch_code
                return fail(code, f"templateContent.{values_key}", "variables do not match the template")
    return 0


Fail = Callable[[int, str, str], int]


def _mobile(mobile: Any, channel: str, strict: bool, fail: Fail) -> int:
    if not isinstance(mobile, dict):
        return fail(1000, "templateContent.mobileAppParameters", "must be an object")
    extra = _unknown(mobile, _MOBILE_KEYS)
    if strict and extra:
        return fail(1000, f"templateContent.mobileAppParameters.{extra}", "unknown key")
    if channel == "B2C":
        return fail(1009, "templateContent.mobileAppParameters", "mobile parameters for a device surface")
    if not _str(mobile.get("buttonText", ""), 30):
        return fail(1000, "templateContent.mobileAppParameters.buttonText", "at most 30 characters")
    for link in ("deeplinkAndroid", "deeplinkIos"):
        if not _str(mobile.get(link, ""), 350):
            return fail(1000, f"templateContent.mobileAppParameters.{link}", "at most 350 characters")
    return 0


def _device(device: Any, channel: str, cfg: EmulatorConfig, fail: Fail) -> int:
    where = "templateContent.deviceParameters"
    if not isinstance(device, dict):
        return fail(1000, where, "must be an object")
    keys = {"deeplink", "deepLink"} if cfg.lenient or cfg.device_deeplink_key == "any" else {cfg.device_deeplink_key}
    extra = _unknown(device, _DEVICE_KEYS | keys)
    if not cfg.lenient and extra:
        return fail(1000, f"{where}.{extra}", "unknown key")
    if channel != "B2C":
        return fail(1009, where, "device parameters for the mobile app")
    device_link = device.get("deeplink", device.get("deepLink", ""))
    if not _str(device_link, 350):
        return fail(1000, f"{where}.deeplink", "at most 350 characters")
    serial = device.get("deviceSerialFilter")
    shape = "any" if cfg.lenient else cfg.device_serial_filter
    if serial is not None and (
        (shape == "array" and not isinstance(serial, list)) or (shape == "object" and not isinstance(serial, dict))
    ):
        return fail(1000, f"{where}.deviceSerialFilter", f"must be an {'array' if shape == 'array' else 'object'}")
    if serial and device.get("productFilter"):
        return fail(1015, where, "deviceSerialFilter and productFilter")
    return 0


def _time_frame(frame: Any) -> int:
    if not isinstance(frame, dict):
        return 1008
    start, finish = frame.get("startTime"), frame.get("finishTime")
    if not (_str(start) and _TIME.match(start) and _str(finish) and _TIME.match(finish)):
        return 1008
    zone, first = frame.get("timeZone"), frame.get("startDate")
    if not (_str(zone) and _ZONE.match(zone) and _str(first) and _DATE.match(first)):
        return 1008
    end = frame.get("endDate", first)
    if not (_str(end) and _DATE.match(end)) or end < first:
        return 1008
    return 1001 if start > finish else 0


def check_extended(body: Any, cfg: EmulatorConfig) -> tuple[Verdict, list[Any], str, str, str]:
    """Verdict, destinations, projectId, sub and delivery mode of an (unwrapped) extended request."""
    errors: list[dict[str, str]] = []

    def whole(code: int, key: str, message: str, n: int = 1) -> Verdict:
        errors.append({"key": key, "message": message})
        return Verdict([code] * max(n, 1), errors)

    if not isinstance(body, dict):
        return whole(1000, "", "body must be an object"), [], "", "", ""
    payload = body.get("payload")
    if not isinstance(payload, dict):
        return whole(1000, "payload", "payload is required"), [], "", "", ""
    dc = payload.get("deliveryConfig") if isinstance(payload.get("deliveryConfig"), dict) else {}
    assert isinstance(dc, dict)
    dests = dc.get("destinations") if isinstance(dc.get("destinations"), list) else []
    assert isinstance(dests, list)
    n = len(dests)
    sender = payload.get("sender") if isinstance(payload.get("sender"), dict) else {}
    assert isinstance(sender, dict)
    project: str = sender["projectId"] if _str(sender.get("projectId")) else ""
    client = (payload.get("recipient") or {}).get("clientId") if isinstance(payload.get("recipient"), dict) else None
    sub: str = client["id"] if isinstance(client, dict) and _str(client.get("id")) else ""
    mode: str = dc["deliveryMode"] if _str(dc.get("deliveryMode")) else ""
    if not _str(body.get("protocolVersion"), 16) or not body.get("protocolVersion"):
        return (
            whole(1000, "protocolVersion", "protocolVersion is required, string(16)", n),
            dests,
            project,
            sub,
            mode,
        )
    if isinstance(body.get("messageId"), bool) or not isinstance(body.get("messageId"), int):
        return whole(1000, "messageId", "messageId is required, long", n), dests, project, sub, mode
    if body.get("messageName", "SEND_PUSH") != "SEND_PUSH":
        return whole(1001, "messageName", "wrong messageName", n), dests, project, sub, mode
    if not project:
        return whole(1000, "payload.sender.projectId", "projectId is required", n), dests, project, sub, mode
    app = sender.get("application")
    if app is not None and not (isinstance(app, dict) and _str(app.get("appId")) and _str(app.get("versionId"))):
        return (
            whole(1000, "payload.sender.application", "appId and versionId are required", n),
            dests,
            project,
            sub,
            mode,
        )
    if not isinstance(client, dict) or client.get("idType") != "SUB":
        return (
            whole(1002, "payload.recipient.clientId.idType", "clientId type not allowed", n),
            dests,
            project,
            sub,
            mode,
        )
    if not sub or len(sub) > 1024:
        return (
            whole(1012, "payload.recipient.clientId.id", "sub is not in the expected format", n),
            dests,
            project,
            sub,
            mode,
        )
    case = "any" if cfg.lenient else cfg.delivery_mode_case
    wrong_case = (case == "upper" and mode != mode.upper()) or (case == "lower" and mode != mode.lower())
    if mode.upper() not in ("BROADCAST", "SEQUENTIAL") or wrong_case:
        return (
            whole(1003, "payload.deliveryConfig.deliveryMode", "unknown delivery mode", n),
            dests,
            project,
            sub,
            mode,
        )
    if not dests:
        return (
            whole(1001, "payload.deliveryConfig.destinations", "empty destination"),
            dests,
            project,
            sub,
            mode,
        )
    if project in cfg.disabled_projects:
        return (
            whole(1013, "payload.sender.projectId", "push is not enabled for this project", n),
            dests,
            project,
            sub,
            mode,
        )
    codes = [_destination(d, cfg, project, errors, i) for i, d in enumerate(dests)]
    for i, d in enumerate(dests):
        forced = cfg.surface_status.get(d.get("surface", "")) if isinstance(d, dict) else None
        if forced is not None and codes[i] == 0:
            codes[i] = forced
    return Verdict(codes, errors), dests, project, sub, mode


def lite_as_extended(body: Any) -> Any:
    """The lite request's fields, placed where the extended request keeps them."""
    if not isinstance(body, dict):
        return body
    surface = body.get("surface")
    return {
        "protocolVersion": "V1",
        "messageId": 0,
        "messageName": "SEND_PUSH",
        "payload": {
            "sender": {"projectId": body.get("projectId")},
            "recipient": {"clientId": {"idType": "SUB", "id": body.get("clientId")}},
            "deliveryConfig": {
                "deliveryMode": "BROADCAST",
                "destinations": [
                    {
                        "surface": surface,
                        "channel": SURFACE_CHANNEL.get(surface, "B2C") if isinstance(surface, str) else "B2C",
                        "templateContent": body.get("templateContent"),
                    }
                ],
            },
        },
    }
