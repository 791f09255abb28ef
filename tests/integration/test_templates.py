"""The template registry: sends are checked against known templates before the upstream call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from smartpush.gateway.v1 import delivery_pb2 as d
from smartpush.gateway.v1 import template_service_pb2, template_service_pb2_grpc
from smartpush_gateway_client.errors import decode

from gateway.config import TemplateSettings
from gateway.server import Gateway
from tests import seed_examples as seeds
from tests.conftest import GatewayFactory
from tests.helpers import EmulatorAdmin, async_stub, send_request

ORDER = TemplateSettings(
    id="6b1f7c3e-order-ready",
    name="Order ready",
    surface="COMPANION",
    header="{{name}}, your order is ready",
    body="Order {{order}} can be picked up until {{date}}.",
    deeplink_parameters=["buttonText", "deeplinkAndroid", "deeplinkIos"],
)


@pytest.fixture
async def registry_gateway(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway(templates=[ORDER], strict_templates=True)


def _order(**values: str) -> Any:
    req = send_request(d.SURFACE_COMPANION, template_id=ORDER.id)
    content = req.delivery.template_content
    content.header_values["name"] = values.pop("name", "Anna")
    content.body_values.update({"order": "A-17", "date": "Friday", **values})
    return req


async def _refused(gw: Gateway, req: Any) -> list[tuple[str, str]]:
    async with grpc.aio.insecure_channel(gw.address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await async_stub(ch).Send(req, timeout=5)
    err = decode(caught.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    return [(v.field, v.description) for v in err.field_violations]


async def test_missing_extra_and_too_long(registry_gateway: Gateway, admin: EmulatorAdmin) -> None:
    missing = _order()
    del missing.delivery.template_content.body_values["date"]
    assert [f for f, _ in await _refused(registry_gateway, missing)] == [
        'delivery.template_content.body_values["date"]'
    ]

    extra = _order(coupon="X1")
    violations = await _refused(registry_gateway, extra)
    assert violations == [
        ('delivery.template_content.body_values["coupon"]', "not a variable of template 6b1f7c3e-order-ready's body")
    ]

    both = _order(coupon="X1")
    del both.delivery.template_content.header_values["name"]
    fields = [f for f, _ in await _refused(registry_gateway, both)]
    assert fields == [
        'delivery.template_content.header_values["name"]',
        'delivery.template_content.body_values["coupon"]',
    ]

    long = _order(order="9" * 450)
    violations = await _refused(registry_gateway, long)
    assert violations[0][0] == "delivery.template_content.body_values"
    assert "at most 480" in violations[0][1]

    wrong_surface = _order()
    wrong_surface.delivery.destinations.add(surface=d.SURFACE_SBERBOX)
    assert [f for f, _ in await _refused(registry_gateway, wrong_surface)] == ["delivery.destinations[1].surface"]

    image = _order()
    image.delivery.template_content.mobile_app_parameters.image_link = "https://img.example/x.png"
    assert [f for f, _ in await _refused(registry_gateway, image)] == [
        "delivery.template_content.mobile_app_parameters.image_link"
    ]
    assert await admin.stats() == {}  # nothing reached SmartPush


async def test_valid_send_and_rendered_dry_run(registry_gateway: Gateway, admin: EmulatorAdmin) -> None:
    await admin.config(templates={ORDER.id: {"header_variables": ["name"], "body_variables": ["order", "date"]}})
    async with grpc.aio.insecure_channel(registry_gateway.address) as ch:
        stub = async_stub(ch)
        dry_run = _order()
        dry_run.validate_only = True
        dry = await stub.Send(dry_run, timeout=5)
        assert dry.rendered_header == "Anna, your order is ready"
        assert dry.rendered_body == "Order A-17 can be picked up until Friday."
        sent = await stub.Send(_order(), timeout=5)
        assert sent.results[0].status_code == 0


async def test_unknown_template_strict_and_lenient(make_gateway: GatewayFactory, admin: EmulatorAdmin) -> None:
    strict = await make_gateway(templates=[ORDER], strict_templates=True)
    async with grpc.aio.insecure_channel(strict.address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await async_stub(ch).Send(send_request(template_id="not-in-registry"), timeout=5)
    err = decode(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "ERROR_REASON_TEMPLATE_UNKNOWN")
    assert await admin.stats() == {}
    lenient = await make_gateway(templates=[ORDER], strict_templates=False)
    async with grpc.aio.insecure_channel(lenient.address) as ch:
        response = await async_stub(ch).Send(send_request(), timeout=5)  # the emulator's demo template
    assert response.results[0].status_code == 0


async def test_template_service(registry_gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(registry_gateway.address) as ch:
        stub: Any = template_service_pb2_grpc.TemplateServiceStub(ch)
        listed = await stub.ListTemplates(template_service_pb2.ListTemplatesRequest(), timeout=5)
        assert [t.id for t in listed.templates] == [ORDER.id]
        template = (await stub.GetTemplate(template_service_pb2.GetTemplateRequest(id=ORDER.id))).template
        assert (list(template.header_variables), list(template.body_variables)) == (["name"], ["order", "date"])
        assert template.surface == d.SURFACE_COMPANION
        content = _order().delivery.template_content
        ok = await stub.ValidateTemplateContent(
            template_service_pb2.ValidateTemplateContentRequest(template_content=content)
        )
        assert ok.valid
        assert ok.rendered_body == "Order A-17 can be picked up until Friday."
        del content.header_values["name"]
        bad = await stub.ValidateTemplateContent(
            template_service_pb2.ValidateTemplateContentRequest(template_content=content, surfaces=[d.SURFACE_TV])
        )
        assert not bad.valid
        assert [v.field for v in bad.violations] == ['template_content.header_values["name"]', "surfaces[0]"]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetTemplate(template_service_pb2.GetTemplateRequest(id="nope"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_cli_permissions_and_templates(tmp_path: Path) -> None:
    exe = [sys.executable, "-m", "gateway"]
    parsed = subprocess.run(
        [*exe, "permissions", "parse", "-"],
        input=json.dumps(seeds.TAKE_RUNTIME_PERMISSIONS),
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0, parsed.stderr
    assert json.loads(parsed.stdout)["status"] == "RUNTIME_PERMISSION_STATUS_GRANTED"
    garbage = subprocess.run(
        [*exe, "permissions", "parse", "-"], input="nope", capture_output=True, text=True, check=False
    )
    assert garbage.returncode == 1
    assert json.loads(garbage.stdout)["field_violations"][0]["field"] == "message_json"

    config = tmp_path / "gateway.yaml"
    config.write_text(
        "templates:\n"
        f"  - id: {ORDER.id}\n    surface: COMPANION\n    header: '{ORDER.header}'\n    body: '{ORDER.body}'\n"
    )
    listed = subprocess.run(
        [*exe, "templates", "list", "--config", str(config)], capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["templates"][0]["body_variables"] == ["order", "date"]
    content = tmp_path / "content.json"
    content.write_text(json.dumps({"id": ORDER.id, "headerValues": {"name": "Anna"}, "bodyValues": {"order": "1"}}))
    checked = subprocess.run(
        [*exe, "templates", "validate", str(content), "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 1
    result = json.loads(checked.stdout)
    assert result["valid"] is False
    assert result["violations"][0]["field"] == 'template_content.body_values["date"]'
    assert result["rendered_header"] == "Anna, your order is ready"
