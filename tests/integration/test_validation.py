"""Every field rule is enforced before any upstream call, with INVALID_ARGUMENT naming the field path."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from smartpush.gateway.v1 import delivery_pb2 as d
from smartpush.gateway.v1 import push_service_pb2, template_pb2
from smartpush_gateway_client.errors import decode

from tests.helpers import AsyncStub, EmulatorAdmin, send_request

Req = push_service_pb2.SendRequest
Mutate = Callable[[Req], None]


def _mobile(**fields: str) -> Mutate:
    def mutate(req: Req) -> None:
        req.delivery.template_content.mobile_app_parameters.CopyFrom(template_pb2.MobileAppParameters(**fields))

    return mutate


def _device(**fields: object) -> Mutate:
    def mutate(req: Req) -> None:
        for dest in req.delivery.destinations:
            dest.surface = d.SURFACE_SBERBOX
        req.delivery.template_content.device_parameters.CopyFrom(template_pb2.DeviceParameters(**fields))  # type: ignore[arg-type]

    return mutate


def _frame(**fields: str) -> Mutate:
    base = {
        "start_time": "09:00:00",
        "finish_time": "18:00:00",
        "time_zone": "GMT+03:00",
        "start_date": "2026-12-01",
    }

    def mutate(req: Req) -> None:
        req.delivery.time_frame.CopyFrom(d.TimeFrame(**{**base, **fields}))

    return mutate


def _set(path: str, value: object) -> Mutate:
    def mutate(req: Req) -> None:
        *parents, leaf = path.split(".")
        target: object = req
        for p in parents:
            target = getattr(target, p)
        setattr(target, leaf, value)

    return mutate


def _add_destination(surface: int, **fields: int) -> Mutate:
    def mutate(req: Req) -> None:
        req.delivery.destinations.add(surface=surface, **fields)

    return mutate


def _clear(field: str) -> Mutate:
    def mutate(req: Req) -> None:
        *parents, leaf = field.split(".")
        target: object = req
        for p in parents:
            target = getattr(target, p)
        target.ClearField(leaf)  # type: ignore[attr-defined]

    return mutate


def _values(kind: str, n: int) -> Mutate:
    def mutate(req: Req) -> None:
        getattr(req.delivery.template_content, kind).update({f"v{i}": "x" for i in range(n)})

    return mutate


def _sequential_same_priority(req: Req) -> None:
    req.delivery.delivery_mode = d.DELIVERY_MODE_SEQUENTIAL
    del req.delivery.destinations[:]
    req.delivery.destinations.add(surface=d.SURFACE_COMPANION, priority=0)
    req.delivery.destinations.add(surface=d.SURFACE_SBERBOX, priority=0)


def _mobile_on_device(req: Req) -> None:
    _add_destination(d.SURFACE_SBERBOX)(req)
    _mobile(button_text="Go")(req)


def _both_credentials(req: Req) -> None:
    req.profile = "default"
    req.credentials.CopyFrom(push_service_pb2.Credentials(client_id="a", secret="b"))


CASES: list[tuple[str, Mutate, str]] = [
    ("empty project id", _set("project_id", ""), "project_id"),
    ("empty sub", _set("sub", ""), "sub"),
    ("blank sub", _set("sub", "   "), "sub"),
    ("template id over 36", _set("delivery.template_content.id", "x" * 37), "delivery.template_content.id"),
    ("template id missing", _set("delivery.template_content.id", ""), "delivery.template_content.id"),
    (
        "button text over 30",
        _mobile(button_text="x" * 31),
        "delivery.template_content.mobile_app_parameters.button_text",
    ),
    (
        "android deeplink over 350",
        _mobile(deeplink_android="x" * 351),
        "delivery.template_content.mobile_app_parameters.deeplink_android",
    ),
    (
        "ios deeplink over 350",
        _mobile(deeplink_ios="x" * 351),
        "delivery.template_content.mobile_app_parameters.deeplink_ios",
    ),
    ("device deeplink over 350", _device(deeplink="x" * 351), "delivery.template_content.device_parameters.deeplink"),
    ("4 header values", _values("header_values", 4), "delivery.template_content.header_values"),
    ("11 body values", _values("body_values", 11), "delivery.template_content.body_values"),
    (
        "serial and product filter",
        _device(device_serial_filters=[template_pb2.DeviceSerialFilter(serial_number="S1")], product_filter="sberbox"),
        "delivery.template_content.device_parameters.product_filter",
    ),
    ("mobile parameters on a device surface", _mobile_on_device, "delivery.destinations[1].surface"),
    ("no destination", _clear("delivery.destinations"), "delivery.destinations"),
    ("duplicate surface", _add_destination(d.SURFACE_COMPANION), "delivery.destinations[1].surface"),
    ("unspecified surface", _add_destination(d.SURFACE_UNSPECIFIED), "delivery.destinations[1].surface"),
    ("unknown surface number", _add_destination(99), "delivery.destinations[1].surface"),
    ("unknown channel number", _add_destination(d.SURFACE_SBERBOX, channel=42), "delivery.destinations[1].channel"),
    (
        "unspecified delivery mode",
        _set("delivery.delivery_mode", d.DELIVERY_MODE_UNSPECIFIED),
        "delivery.delivery_mode",
    ),
    ("same priority twice", _sequential_same_priority, "delivery.destinations[1].priority"),
    ("no template content", _clear("delivery.template_content"), "delivery.template_content"),
    ("no delivery", _clear("delivery"), "delivery"),
    ("bad start time", _frame(start_time="9:00"), "delivery.time_frame.start_time"),
    ("bad finish time", _frame(finish_time="24:00:00"), "delivery.time_frame.finish_time"),
    ("bad time zone", _frame(time_zone="UTC+3"), "delivery.time_frame.time_zone"),
    ("bad start date", _frame(start_date="2026:12:01"), "delivery.time_frame.start_date"),
    ("impossible date", _frame(start_date="2026-02-30"), "delivery.time_frame.start_date"),
    ("bad end date", _frame(end_date="01.12.2026"), "delivery.time_frame.end_date"),
    ("end date before start", _frame(end_date="2026-11-30"), "delivery.time_frame.end_date"),
    ("start after finish", _frame(start_time="19:00:00"), "delivery.time_frame.start_time"),
    ("application without version", _set("application.app_id", "app"), "application.version_id"),
    ("relative callback url", _set("callback_url", "/hook"), "callback_url"),
    ("idempotency key over 128", _set("idempotency_key", "k" * 129), "idempotency_key"),
    ("profile and credentials", _both_credentials, "credentials"),
]


@pytest.mark.parametrize(("mutate", "field"), [(m, f) for _, m, f in CASES], ids=[c[0] for c in CASES])
async def test_rule_rejected_with_field_path_and_nothing_sent(
    stub: AsyncStub, admin: EmulatorAdmin, mutate: Mutate, field: str
) -> None:
    req = send_request(d.SURFACE_COMPANION)
    mutate(req)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(req, timeout=5)
    err = decode(caught.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason == "ERROR_REASON_INVALID_REQUEST"
    assert err.domain == "smartpush.gateway"
    assert field in [v.field for v in err.field_violations], err.field_violations
    assert err.rq_uid
    assert await admin.stats() == {}  # not even a token request


async def test_every_violation_is_reported_at_once(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    req = send_request(d.SURFACE_COMPANION, sub="", project_id="")
    req.delivery.template_content.id = "x" * 40
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(req, timeout=5)
    fields = [v.field for v in decode(caught.value).field_violations]
    assert fields == ["project_id", "sub", "delivery.template_content.id"]


async def test_oneof_keeps_mobile_and_device_parameters_exclusive() -> None:
    # The contract itself makes them exclusive: setting one clears the other in every language.
    content = template_pb2.TemplateContent(id="t")
    content.mobile_app_parameters.button_text = "Go"
    content.device_parameters.deeplink = "x"
    assert content.WhichOneof("parameters") == "device_parameters"
    assert not content.HasField("mobile_app_parameters")
