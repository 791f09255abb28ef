"""Every field rule checked before any upstream call, each reported with its proto field path.

The rules are declared here once (limits in `gateway.limits`); the proto comments state
the same limits for other languages. protovalidate was considered: 2.x needs buf's
protobuf-py runtime (not grpcio's messages), 1.x evaluates CEL in pure Python per message.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from smartpush.gateway.v1 import delivery_pb2, push_service_pb2, template_pb2

from gateway import limits
from gateway.errors import FieldViolation
from gateway.smartpush.surfaces import (
    CHANNEL_TO_WIRE,
    DEVICE_SURFACES,
    MOBILE_SURFACES,
    SURFACE_TO_WIRE,
    channel_for,
)

_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")
_ZONE = re.compile(r"^GMT[+-](0\d|1[0-4]):[0-5]\d$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_MODES = frozenset({delivery_pb2.DELIVERY_MODE_BROADCAST, delivery_pb2.DELIVERY_MODE_SEQUENTIAL})


# The two checks every request runs many times return tuples, not generators: an empty tuple
# costs nothing to make or to extend a list with, where a generator is made and run each time.
_NONE: tuple[FieldViolation, ...] = ()


def _max_len(path: str, value: str, limit: int) -> tuple[FieldViolation, ...]:
    if len(value) > limit:
        return (FieldViolation(path, f"at most {limit} characters, got {len(value)}"),)
    return _NONE


def _required(path: str, value: str) -> tuple[FieldViolation, ...]:
    if not value.strip():
        return (FieldViolation(path, "required"),)
    return _NONE


def _date(path: str, value: str) -> datetime.date | None:
    if not _DATE.match(value):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


def _time_frame(frame: delivery_pb2.TimeFrame, p: str) -> Iterator[FieldViolation]:
    times_ok = True
    for name in ("start_time", "finish_time"):
        if not _TIME.match(getattr(frame, name)):
            times_ok = False
            yield FieldViolation(f"{p}.{name}", "must be HH:MM:SS (00:00:00-23:59:59)")
    if not _ZONE.match(frame.time_zone):
        yield FieldViolation(f"{p}.time_zone", "must be GMT+hh:mm or GMT-hh:mm, e.g. GMT+03:00")
    start = _date(p, frame.start_date)
    if start is None:
        yield FieldViolation(f"{p}.start_date", "must be a date YYYY-MM-DD")
    end = start
    if frame.end_date:
        end = _date(p, frame.end_date)
        if end is None:
            yield FieldViolation(f"{p}.end_date", "must be a date YYYY-MM-DD")
        elif start is not None and end < start:
            yield FieldViolation(f"{p}.end_date", "must not be before start_date")
    if times_ok and frame.start_time > frame.finish_time:
        yield FieldViolation(f"{p}.start_time", "must not be after finish_time")


def _template(content: template_pb2.TemplateContent, p: str, users: list[tuple[int, int]]) -> Iterator[FieldViolation]:
    """Rules of one template content; `users` are the (index, surface) of the destinations it serves."""
    template_id = content.id
    yield from _required(f"{p}.id", template_id)
    yield from _max_len(f"{p}.id", template_id, limits.TEMPLATE_ID_MAX)
    header_values, body_values = content.header_values, content.body_values
    if len(header_values) > limits.HEADER_VARIABLES_MAX:
        yield FieldViolation(
            f"{p}.header_values",
            f"at most {limits.HEADER_VARIABLES_MAX} variables, got {len(header_values)}",
        )
    if len(body_values) > limits.BODY_VARIABLES_MAX:
        yield FieldViolation(
            f"{p}.body_values",
            f"at most {limits.BODY_VARIABLES_MAX} variables, got {len(body_values)}",
        )
    for field_name, values in (("header_values", header_values), ("body_values", body_values)):
        for key in values:
            if not key.strip():
                yield FieldViolation(f"{p}.{field_name}", "variable names must not be empty")
    which = content.WhichOneof("parameters")
    if which == "mobile_app_parameters":
        m = content.mobile_app_parameters
        q = f"{p}.mobile_app_parameters"
        if not any((m.button_text, m.deeplink_android, m.deeplink_ios, m.android_version, m.ios_version, m.image_link)):
            yield FieldViolation(q, "set at least one parameter, or leave mobile_app_parameters unset")
        yield from _max_len(f"{q}.button_text", m.button_text, limits.BUTTON_TEXT_MAX)
        yield from _max_len(f"{q}.deeplink_android", m.deeplink_android, limits.DEEPLINK_MAX)
        yield from _max_len(f"{q}.deeplink_ios", m.deeplink_ios, limits.DEEPLINK_MAX)
        for i, s in users:
            if s in DEVICE_SURFACES:
                yield FieldViolation(
                    f"delivery.destinations[{i}].surface",
                    f"{SURFACE_TO_WIRE[s]} is a device surface; mobile_app_parameters apply to COMPANION",
                )
    elif which == "device_parameters":
        d = content.device_parameters
        q = f"{p}.device_parameters"
        yield from _required(f"{q}.deeplink", d.deeplink)
        yield from _max_len(f"{q}.deeplink", d.deeplink, limits.DEEPLINK_MAX)
        if d.device_serial_filters and d.product_filter:
            yield FieldViolation(
                f"{q}.product_filter", "device_serial_filters and product_filter are mutually exclusive"
            )
        for i, f in enumerate(d.device_serial_filters[:]):
            yield from _required(f"{q}.device_serial_filters[{i}].serial_number", f.serial_number)
        for i, s in users:
            if s in MOBILE_SURFACES or s not in DEVICE_SURFACES:
                yield FieldViolation(
                    f"delivery.destinations[{i}].surface",
                    f"{SURFACE_TO_WIRE.get(s, s)} is not a device surface; device_parameters are for devices",
                )


def _delivery(config: delivery_pb2.DeliveryConfig, endpoint: str) -> Iterator[FieldViolation]:
    p = "delivery"
    # Each field read once into a local: a message's field read is a name lookup and a new object.
    mode = config.delivery_mode
    if mode not in _MODES:
        yield FieldViolation(f"{p}.delivery_mode", "must be DELIVERY_MODE_BROADCAST or DELIVERY_MODE_SEQUENTIAL")
    # A slice, read once: iterating a repeated field runs the sequence protocol to an IndexError.
    dests = config.destinations[:]
    if not dests:
        yield FieldViolation(f"{p}.destinations", "at least one destination is required")
    seen: dict[int, int] = {}
    priorities: dict[int, int] = {}
    shared_users: list[tuple[int, int]] = []
    shared = config.HasField("template_content")
    own_content = any(d.HasField("template_content") for d in dests)
    framed = config.HasField("time_frame")
    for i, dest in enumerate(dests):
        q = f"{p}.destinations[{i}]"
        surface, channel = dest.surface, dest.channel
        if surface not in SURFACE_TO_WIRE:
            yield FieldViolation(f"{q}.surface", "must be a known surface, not SURFACE_UNSPECIFIED")
        elif surface in seen:
            yield FieldViolation(f"{q}.surface", f"duplicate of destinations[{seen[surface]}]")
        else:
            seen[surface] = i
        if channel and channel not in CHANNEL_TO_WIRE:
            yield FieldViolation(f"{q}.channel", "must be a known channel or unset")
        elif channel and surface in SURFACE_TO_WIRE:
            fits = channel_for(surface, 0)
            if CHANNEL_TO_WIRE[channel] != fits:
                yield FieldViolation(
                    f"{q}.channel",
                    f"{CHANNEL_TO_WIRE[channel]} does not serve {SURFACE_TO_WIRE[surface]} (it takes {fits})",
                )
        if mode == delivery_pb2.DELIVERY_MODE_SEQUENTIAL and dest.HasField("priority"):
            if dest.priority in priorities:
                yield FieldViolation(f"{q}.priority", f"same priority as destinations[{priorities[dest.priority]}]")
            priorities[dest.priority] = i
        if dest.HasField("template_content"):
            yield from _template(dest.template_content, f"{q}.template_content", [(i, surface)])
        elif shared:
            shared_users.append((i, surface))
        elif own_content:  # some destinations have their own: this one lacks any
            yield FieldViolation(f"{q}.template_content", "required: set it here or in delivery.template_content")
        if dest.HasField("time_frame"):
            framed = True
            yield from _time_frame(dest.time_frame, f"{q}.time_frame")
    if shared:
        yield from _template(config.template_content, f"{p}.template_content", shared_users)
    elif not own_content:
        yield FieldViolation(f"{p}.template_content", "required (or a template_content on every destination)")
    if config.HasField("time_frame"):
        yield from _time_frame(config.time_frame, f"{p}.time_frame")
    if endpoint == "lite":
        if len(dests) > 1:
            yield FieldViolation(f"{p}.destinations", "the lite endpoint takes exactly one destination")
        if framed:
            yield FieldViolation(f"{p}.time_frame", "the lite endpoint has no time frame")


def validate_send(req: push_service_pb2.SendRequest, endpoint: str = "extended") -> list[FieldViolation]:
    """All violations of `req`, in field order; empty when the request may go upstream."""
    out: list[FieldViolation] = []
    project_id, sub = req.project_id, req.sub  # (read once: see _delivery)
    out += _required("project_id", project_id)
    out += _max_len("project_id", project_id, limits.PROJECT_ID_MAX)
    out += _required("sub", sub)
    out += _max_len("sub", sub, limits.SUB_MAX)
    if req.HasField("application"):
        out += _required("application.app_id", req.application.app_id)
        out += _required("application.version_id", req.application.version_id)
    if req.HasField("credentials"):
        if req.profile:
            out.append(FieldViolation("credentials", "set either profile or credentials, not both"))
        out += _required("credentials.client_id", req.credentials.client_id)
        out += _required("credentials.secret", req.credentials.secret)
    if not req.HasField("delivery"):
        out.append(FieldViolation("delivery", "required"))
    else:
        out += _delivery(req.delivery, endpoint)
    out += _max_len("idempotency_key", req.idempotency_key, limits.IDEMPOTENCY_KEY_MAX)
    callback_url = req.callback_url
    if callback_url:
        out += _max_len("callback_url", callback_url, limits.CALLBACK_URL_MAX)
        out += _callback_url(callback_url)
    return out


def _callback_url(url: str) -> Iterator[FieldViolation]:
    # It travels as an HTTP header: printable ASCII only (no CR, LF, NUL, spaces or raw Unicode).
    if not _HEADER_SAFE.fullmatch(url):
        yield FieldViolation("callback_url", "must be printable ASCII without spaces (percent-encode the rest)")
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses the port, raising for a bad one
    except ValueError:
        yield FieldViolation("callback_url", "is not a valid URL (host, brackets or port)")
        return
    if parts.scheme not in ("http", "https") or not parts.hostname:
        yield FieldViolation("callback_url", "must be an absolute http(s) URL")
