"""The exact JSON SmartPush receives, checked at the emulator over real HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import pytest
from smartpush.gateway.v1 import delivery_pb2 as d
from smartpush.gateway.v1 import push_service_pb2, template_pb2

from gateway.emulator import DEMO_TEMPLATE_ID
from tests.conftest import GatewayFactory
from tests.helpers import PROJECT, SUB, AsyncStub, EmulatorAdmin, async_stub, send_request


def _envelope(mode: str, destinations: list[dict[str, Any]], message_id: int) -> dict[str, Any]:
    return {
        "requestPayload": {
            "protocolVersion": "V1",
            "messageId": message_id,
            "messageName": "SEND_PUSH",
            "payload": {
                "sender": {"projectId": PROJECT},
                "recipient": {"clientId": {"idType": "SUB", "id": SUB}},
                "deliveryConfig": {"deliveryMode": mode, "destinations": destinations},
            },
        }
    }


async def _only_send(admin: EmulatorAdmin) -> dict[str, Any]:
    sends = await admin.sends()
    assert len(sends) == 1
    record = sends[0]
    assert record["authorization"] == "Bearer"
    assert record["content_type"] == "application/json"
    assert uuid.UUID(record["rq_uid"]).version == 4
    return record


async def test_seed_example_broadcast_companion_mobile_parameters(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    # The seed's `$smartPush.send` example, field for field.
    req = send_request(d.SURFACE_COMPANION)
    req.delivery.template_content.mobile_app_parameters.CopyFrom(
        template_pb2.MobileAppParameters(
            deeplink_android="example-listen-android", deeplink_ios="example-mai-listen-ios", button_text="Слушать"
        )
    )
    response = await stub.Send(req, timeout=5)
    record = await _only_send(admin)
    assert record["path"] == "/api/v2/smartpush/apprequest"
    assert record["rq_uid"] == response.rq_uid
    body = record["body"]
    assert body == _envelope(
        "BROADCAST",
        [
            {
                "channel": "COMPANION_B2C",
                "surface": "COMPANION",
                "templateContent": {
                    "id": "49061553-27c7-4471-9145-d8d6137c57da",
                    "headerValues": {},
                    "bodyValues": {},
                    "mobileAppParameters": {
                        "buttonText": "Слушать",
                        "deeplinkAndroid": "example-listen-android",
                        "deeplinkIos": "example-mai-listen-ios",
                    },
                },
            }
        ],
        body["requestPayload"]["messageId"],
    )
    assert isinstance(body["requestPayload"]["messageId"], int)
    assert [r.status_code for r in response.results] == [0]
    assert response.results[0].reported


async def test_two_surface_sequential_with_priorities_and_derived_channels(
    stub: AsyncStub, admin: EmulatorAdmin
) -> None:
    req = send_request(mode=d.DELIVERY_MODE_SEQUENTIAL)
    del req.delivery.destinations[:]
    req.delivery.destinations.add(surface=d.SURFACE_SBERBOX, priority=1)
    req.delivery.destinations.add(surface=d.SURFACE_COMPANION, priority=0)
    response = await stub.Send(req, timeout=5)
    body = (await _only_send(admin))["body"]
    content = {"id": DEMO_TEMPLATE_ID, "headerValues": {}, "bodyValues": {}}
    assert body == _envelope(
        "SEQUENTIAL",
        [
            {"channel": "B2C", "surface": "SBERBOX", "priority": 1, "templateContent": content},
            {"channel": "COMPANION_B2C", "surface": "COMPANION", "priority": 0, "templateContent": content},
        ],
        body["requestPayload"]["messageId"],
    )
    # SEQUENTIAL stops at the first delivery, COMPANION (priority 0): SBERBOX is not reported.
    assert [(r.surface, r.reported, r.status_code) for r in response.results] == [
        (d.SURFACE_SBERBOX, False, 0),
        (d.SURFACE_COMPANION, True, 0),
    ]


async def test_device_parameters_with_product_filter(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    req = send_request(d.SURFACE_SBERBOX, d.SURFACE_TV)
    req.delivery.template_content.device_parameters.CopyFrom(
        template_pb2.DeviceParameters(
            deeplink="smartapp://open", background_image_uri="https://img.example/bg.png", product_filter="sberbox"
        )
    )
    response = await stub.Send(req, timeout=5)
    body = (await _only_send(admin))["body"]
    content = {
        "id": DEMO_TEMPLATE_ID,
        "headerValues": {},
        "bodyValues": {},
        "deviceParameters": {
            "deeplink": "smartapp://open",
            "backgroundImageUri": "https://img.example/bg.png",
            "productFilter": "sberbox",
        },
    }
    assert body == _envelope(
        "BROADCAST",
        [
            {"channel": "B2C", "surface": "SBERBOX", "templateContent": content},
            {"channel": "B2C", "surface": "TV", "templateContent": content},
        ],
        body["requestPayload"]["messageId"],
    )
    assert [r.status_code for r in response.results] == [0, 0]
    assert response.results[0].device_statuses[0].product == "sberbox"


async def test_a_deferred_send_carries_its_time_frame_inside_template_content(
    stub: AsyncStub, admin: EmulatorAdmin
) -> None:
    # Reference §3.3, salutejs Destination.templateContent.timeFrame, smart_app_framework fixtures.
    req = send_request(d.SURFACE_COMPANION)
    req.delivery.time_frame.CopyFrom(
        d.TimeFrame(
            start_time="09:00:00",
            finish_time="21:30:00",
            time_zone="GMT+03:00",
            start_date="2026-12-01",
            end_date="2026-12-03",
        )
    )
    response = await stub.Send(req, timeout=5)
    body = (await _only_send(admin))["body"]
    assert body == _envelope(
        "BROADCAST",
        [
            {
                "channel": "COMPANION_B2C",
                "surface": "COMPANION",
                "templateContent": {
                    "id": DEMO_TEMPLATE_ID,
                    "headerValues": {},
                    "bodyValues": {},
                    "timeFrame": {
                        "startTime": "09:00:00",
                        "finishTime": "21:30:00",
                        "timeZone": "GMT+03:00",
                        "startDate": "2026-12-01",
                        "endDate": "2026-12-03",
                    },
                },
            }
        ],
        body["requestPayload"]["messageId"],
    )
    assert [r.status_code for r in response.results] == [0]


async def test_broadcast_with_per_destination_content_and_time_frame(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    # COMPANION with mobile deeplinks (the shared content) and SBERBOX with its own device deeplink
    # and its own time frame, in one BROADCAST: inexpressible before per-destination content.
    req = send_request(d.SURFACE_COMPANION, d.SURFACE_SBERBOX)
    req.delivery.template_content.mobile_app_parameters.CopyFrom(
        template_pb2.MobileAppParameters(deeplink_android="app-android", deeplink_ios="app-ios", button_text="Открыть")
    )
    box = req.delivery.destinations[1]
    box.template_content.CopyFrom(
        template_pb2.TemplateContent(
            id=DEMO_TEMPLATE_ID, device_parameters=template_pb2.DeviceParameters(deeplink="box-scenario")
        )
    )
    box.time_frame.CopyFrom(
        d.TimeFrame(start_time="10:00:00", finish_time="20:00:00", time_zone="GMT+03:00", start_date="2026-12-05")
    )
    response = await stub.Send(req, timeout=5)
    body = (await _only_send(admin))["body"]
    assert body["requestPayload"]["payload"]["deliveryConfig"]["destinations"] == [
        {
            "channel": "COMPANION_B2C",
            "surface": "COMPANION",
            "templateContent": {
                "id": DEMO_TEMPLATE_ID,
                "headerValues": {},
                "bodyValues": {},
                "mobileAppParameters": {
                    "buttonText": "Открыть",
                    "deeplinkAndroid": "app-android",
                    "deeplinkIos": "app-ios",
                },
            },
        },
        {
            "channel": "B2C",
            "surface": "SBERBOX",
            "templateContent": {
                "id": DEMO_TEMPLATE_ID,
                "headerValues": {},
                "bodyValues": {},
                "deviceParameters": {"deeplink": "box-scenario"},
                "timeFrame": {
                    "startTime": "10:00:00",
                    "finishTime": "20:00:00",
                    "timeZone": "GMT+03:00",
                    "startDate": "2026-12-05",
                },
            },
        },
    ]
    assert [r.status_code for r in response.results] == [0, 0]


async def test_application_and_callback_url(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    req = send_request(
        application=push_service_pb2.Application(app_id="app-1", version_id="ver-1"),
        callback_url="https://hooks.example/smartpush",
    )
    await stub.Send(req, timeout=5)
    record = await _only_send(admin)
    assert record["callback_url"] == "https://hooks.example/smartpush"
    sender = record["body"]["requestPayload"]["payload"]["sender"]
    assert sender == {"projectId": PROJECT, "application": {"appId": "app-1", "versionId": "ver-1"}}


async def test_validate_only_returns_the_exact_body_and_sends_nothing(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    dry = await stub.Send(send_request(d.SURFACE_COMPANION, d.SURFACE_SBERBOX, validate_only=True), timeout=5)
    assert await admin.stats() == {}  # no token request, no send
    real = await stub.Send(send_request(d.SURFACE_COMPANION, d.SURFACE_SBERBOX), timeout=5)
    sent = (await _only_send(admin))["body"]
    shown = json.loads(dry.request_json)
    shown["requestPayload"]["messageId"] = sent["requestPayload"]["messageId"]
    assert shown == sent
    assert dry.upstream_url == real.upstream_url


SWITCHES = [
    # (gateway wire setting, emulator expectation, where the variant shows in the body)
    ({"wrap_request_payload": False}, {"request_payload": "unwrapped"}, "bare body"),
    ({"delivery_mode_case": "lower"}, {"delivery_mode_case": "lower"}, "broadcast"),
    ({"device_deeplink_key": "deepLink"}, {"device_deeplink_key": "deepLink"}, "deepLink"),
    ({"device_serial_filter": "object"}, {"device_serial_filter": "object"}, "serial object"),
]


def _device_request() -> push_service_pb2.SendRequest:
    req = send_request(d.SURFACE_SBERBOX)
    req.delivery.template_content.device_parameters.deeplink = "x"
    req.delivery.template_content.device_parameters.device_serial_filters.add(
        serial_number="AA9999999999999", product="sberbox"
    )
    return req


@pytest.mark.parametrize(("switch", "expectation", "variant"), SWITCHES, ids=[v for _, _, v in SWITCHES])
async def test_each_wire_switch_is_proven_against_an_emulator_expecting_it(
    make_gateway: GatewayFactory,
    admin: EmulatorAdmin,
    switch: dict[str, Any],
    expectation: dict[str, Any],
    variant: str,
) -> None:
    gw = await make_gateway(smartpush={"wire": switch})
    async with grpc.aio.insecure_channel(gw.address) as ch:
        stub = async_stub(ch)
        # The strict emulator, expecting the default, refuses the variant...
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Send(_device_request(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # ...and accepts it once told to expect exactly that variant.
        await admin.config(**expectation)
        response = await stub.Send(_device_request(), timeout=5)
    assert [r.status_code for r in response.results] == [0]
    body = (await admin.sends())[-1]["body"]
    inner = body.get("requestPayload", body)
    params = inner["payload"]["deliveryConfig"]["destinations"][0]["templateContent"]["deviceParameters"]
    mode = inner["payload"]["deliveryConfig"]["deliveryMode"]
    shown = {
        "bare body": "requestPayload" not in body,
        "broadcast": mode == "broadcast",
        "deepLink": params.get("deepLink") == "x" and "deeplink" not in params,
        "serial object": params["deviceSerialFilter"] == {"serialNumber": "AA9999999999999", "product": "sberbox"},
    }
    assert shown[variant]


async def test_lite_endpoint(make_gateway: GatewayFactory, admin: EmulatorAdmin) -> None:
    gw = await make_gateway(smartpush={"endpoint": "lite"})
    req = send_request(d.SURFACE_COMPANION, template_id="lite-template")
    req.delivery.template_content.body_values["x"] = "1"
    await admin.config(strict_templates=False)
    async with grpc.aio.insecure_channel(gw.address) as ch:
        response = await async_stub(ch).Send(req, timeout=5)
    record = (await admin.requests("lite"))[0]
    assert record["path"] == "/api/v2/smartpush/apprequest-lite"
    assert record["body"] == {
        "projectId": PROJECT,
        "clientId": SUB,
        "surface": "COMPANION",
        "templateContent": {"id": "lite-template", "headerValues": {}, "bodyValues": {"x": "1"}},
    }
    assert [r.status_code for r in response.results] == [0]
