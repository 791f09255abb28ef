"""Proto -> SmartPush JSON (reference §2, §3). Pure functions; the format choices come from WireSettings.

Repeated fields are read by slice (`msg.destinations[:]`): a upb repeated field has no `__iter__`,
and iterating one runs the sequence protocol to an IndexError (~2 k instructions per loop)."""

from __future__ import annotations

from typing import Any

import orjson
from smartpush.gateway.v1 import delivery_pb2, push_service_pb2, template_pb2

from gateway.config import WireSettings
from gateway.proto_maps import as_dict
from gateway.smartpush.surfaces import SURFACE_TO_WIRE, channel_for

Json = dict[str, Any]

_MODE = {
    delivery_pb2.DELIVERY_MODE_BROADCAST: "BROADCAST",
    delivery_pb2.DELIVERY_MODE_SEQUENTIAL: "SEQUENTIAL",
}


def template_content(content: template_pb2.TemplateContent, wire: WireSettings) -> Json:
    out: Json = {
        "id": content.id,
        "headerValues": as_dict(content.header_values),
        "bodyValues": as_dict(content.body_values),
    }
    which = content.WhichOneof("parameters")
    if which == "mobile_app_parameters":
        m = content.mobile_app_parameters
        mobile = {
            "buttonText": m.button_text,
            "deeplinkAndroid": m.deeplink_android,
            "deeplinkIos": m.deeplink_ios,
            "androidVersion": m.android_version,
            "iosVersion": m.ios_version,
            "imageLink": m.image_link,
        }
        out["mobileAppParameters"] = {k: v for k, v in mobile.items() if v}
    elif which == "device_parameters":
        d = content.device_parameters
        device: Json = {}
        if d.deeplink:
            device[wire.device_deeplink_key] = d.deeplink
        if d.background_image_uri:
            device["backgroundImageUri"] = d.background_image_uri
        filters = [{"serialNumber": f.serial_number, "product": f.product} for f in d.device_serial_filters[:]]
        if filters:
            device["deviceSerialFilter"] = filters if wire.device_serial_filter == "array" else filters[0]
        if d.product_filter:
            device["productFilter"] = d.product_filter
        out["deviceParameters"] = device
    return out


def time_frame(frame: delivery_pb2.TimeFrame) -> Json:
    out: Json = {
        "startTime": frame.start_time,
        "finishTime": frame.finish_time,
        "timeZone": frame.time_zone,
        "startDate": frame.start_date,
    }
    if frame.end_date:
        out["endDate"] = frame.end_date
    return out


def effective_content(
    config: delivery_pb2.DeliveryConfig, dest: delivery_pb2.Destination
) -> template_pb2.TemplateContent:
    """The destination's own template content, or the shared one."""
    return dest.template_content if dest.HasField("template_content") else config.template_content


def effective_frame(
    config: delivery_pb2.DeliveryConfig, dest: delivery_pb2.Destination
) -> delivery_pb2.TimeFrame | None:
    if dest.HasField("time_frame"):
        return dest.time_frame
    return config.time_frame if config.HasField("time_frame") else None


def content_for(config: delivery_pb2.DeliveryConfig, dest: delivery_pb2.Destination, wire: WireSettings) -> Json:
    """`templateContent` as SmartPush expects it: the time frame inside it (reference §3.3, salutejs)."""
    out = template_content(effective_content(config, dest), wire)
    frame = effective_frame(config, dest)
    if frame is not None:
        out["timeFrame"] = time_frame(frame)
    return out


def destinations(config: delivery_pb2.DeliveryConfig, wire: WireSettings) -> list[Json]:
    sequential = config.delivery_mode == delivery_pb2.DELIVERY_MODE_SEQUENTIAL
    out: list[Json] = []
    for index, dest in enumerate(config.destinations[:]):
        entry: Json = {
            "channel": channel_for(dest.surface, dest.channel),
            "surface": SURFACE_TO_WIRE[dest.surface],
        }
        if sequential:
            entry["priority"] = dest.priority if dest.HasField("priority") else index
        entry["templateContent"] = content_for(config, dest, wire)
        out.append(entry)
    return out


def extended_request(req: push_service_pb2.SendRequest, wire: WireSettings, message_id: int) -> Json:
    sender: Json = {"projectId": req.project_id}
    if req.HasField("application"):
        sender["application"] = {"appId": req.application.app_id, "versionId": req.application.version_id}
    mode = _MODE[req.delivery.delivery_mode]
    body: Json = {
        "protocolVersion": wire.protocol_version,
        "messageId": message_id,
        "messageName": "SEND_PUSH",
        "payload": {
            "sender": sender,
            "recipient": {"clientId": {"idType": "SUB", "id": req.sub}},
            "deliveryConfig": {
                "deliveryMode": mode if wire.delivery_mode_case == "upper" else mode.lower(),
                "destinations": destinations(req.delivery, wire),
            },
        },
    }
    return {"requestPayload": body} if wire.wrap_request_payload else body


def lite_request(req: push_service_pb2.SendRequest, wire: WireSettings) -> Json:
    """The basic request: one surface, template content only (reference §2.2)."""
    dest = req.delivery.destinations[0]
    return {
        "projectId": req.project_id,
        "clientId": req.sub,
        "surface": SURFACE_TO_WIRE[dest.surface],
        "templateContent": template_content(effective_content(req.delivery, dest), wire),
    }


def encode(body: Json) -> bytes:
    # Compact, UTF-8 as is (the bytes of json.dumps with ensure_ascii=False and no spaces, at a
    # twentieth of the cost): the same bytes are sent and shown by validate_only.
    return orjson.dumps(body)
