"""Who may send: real JWTs (an RSA key and JWKS file made in the test) and real mTLS (certificates
made in the test), configured grants, and the caller's name in logs, spans and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from smartpush.gateway.v1 import (
    delivery_pb2,
    permission_service_pb2,
    permission_service_pb2_grpc,
    template_service_pb2,
    template_service_pb2_grpc,
)
from smartpush_gateway_client.errors import decode

from gateway.emulator import DEMO_TEMPLATE_ID
from gateway.logs import JsonFormatter
from gateway.server import Gateway
from gateway.telemetry import Telemetry
from tests import seed_examples as seeds
from tests.conftest import GatewayFactory
from tests.helpers import CLI, PROJECT, SUB, EmulatorAdmin, ShiftClock, async_stub, http_server, send_request
from tests.jwts import AUDIENCE, ISSUER, Signer
from tests.tls import client_cert, make_server_certs

BILLING = "system:serviceaccount:billing:api"
READER = "system:serviceaccount:ops:dashboard"
CALLERS: dict[str, Any] = {
    "billing": {
        "match": BILLING,
        "profiles": ["default"],
        "projects": [PROJECT],
        "templates": ["*"],
    },
    # Read-only: templates and SmartApp conversions, no sends.
    "dashboard": {
        "match": READER,
        "rpcs": ["smartpush.gateway.v1.TemplateService/*", "smartpush.gateway.v1.SmartAppService/*"],
    },
}


async def _refused(call: Any) -> tuple[str, str, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    err = decode(caught.value)
    return err.code.name, err.reason, dict(err.metadata)


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer(tmp_path)


@pytest.fixture
async def jwt_gateway(make_gateway: GatewayFactory, signer: Signer) -> Gateway:
    auth = {"mode": "jwt", "jwt": {"jwks_file": signer.jwks, "issuer": ISSUER, "audience": AUDIENCE}}
    return await make_gateway(auth=auth, callers=CALLERS)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_jwt_credentials_that_do_not_verify_are_unauthenticated(
    jwt_gateway: Gateway, signer: Signer, tmp_path: Path, admin: EmulatorAdmin
) -> None:
    impostor = Signer(tmp_path / "..", kid=signer.kid)  # same key id, another key: the signature fails
    cases = {
        "no credentials": (),
        "not bearer": (("authorization", "Basic dXNlcjpwYXNz"),),
        "not a JWT": bearer("not-a-jwt"),
        "wrong signature": bearer(impostor.token(BILLING)),
        "expired": bearer(signer.token(BILLING, lifetime_s=-120)),
        "wrong audience": bearer(signer.token(BILLING, aud="someone-else")),
        "wrong issuer": bearer(signer.token(BILLING, iss="https://evil.example")),
    }
    async with grpc.aio.insecure_channel(jwt_gateway.address) as channel:
        stub = async_stub(channel)
        for why, metadata in cases.items():
            code, reason, _ = await _refused(stub.Send(send_request(), metadata=metadata, timeout=5))
            assert (code, reason) == ("UNAUTHENTICATED", "ERROR_REASON_CALLER_UNAUTHENTICATED"), why
    assert await admin.sends() == []


async def test_jwt_callers_get_exactly_their_grants(jwt_gateway: Gateway, signer: Signer, admin: EmulatorAdmin) -> None:
    billing, reader = bearer(signer.token(BILLING)), bearer(signer.token(READER))
    stranger = bearer(signer.token("system:serviceaccount:other:job"))
    async with grpc.aio.insecure_channel(jwt_gateway.address) as channel:
        stub = async_stub(channel)
        templates: Any = template_service_pb2_grpc.TemplateServiceStub(channel)
        permissions: Any = permission_service_pb2_grpc.PermissionServiceStub(channel)

        ok = await stub.Send(send_request(), metadata=billing, timeout=5)
        assert ok.results[0].status_code == 0

        refusals = {
            "caller": stub.Send(send_request(), metadata=stranger, timeout=5),
            "profile": stub.Send(send_request(profile="marketing"), metadata=billing, timeout=5),
            "project": stub.Send(send_request(project_id="other-project"), metadata=billing, timeout=5),
            "rpc": stub.Send(send_request(), metadata=reader, timeout=5),
        }
        for refused, call in refusals.items():
            code, reason, metadata = await _refused(call)
            assert (code, reason, metadata["refused"]) == (
                "PERMISSION_DENIED",
                "ERROR_REASON_CALLER_NOT_ALLOWED",
                refused,
            )
        # Consent for a project outside the grants is refused too.
        record = permission_service_pb2.RecordConsentRequest(
            project_id="other-project", sub=SUB, message_json=json.dumps(seeds.TAKE_RUNTIME_PERMISSIONS)
        )
        assert (await _refused(permissions.RecordConsent(record, metadata=billing, timeout=5)))[2]["refused"] == (
            "project"
        )
        # The read-only caller reads.
        listed = await templates.ListTemplates(template_service_pb2.ListTemplatesRequest(), metadata=reader, timeout=5)
        assert listed is not None
    assert len(await admin.sends()) == 1


async def test_a_template_outside_the_grants_is_refused(
    make_gateway: GatewayFactory, signer: Signer, admin: EmulatorAdmin
) -> None:
    auth = {"mode": "jwt", "jwt": {"jwks_file": signer.jwks, "issuer": ISSUER, "audience": AUDIENCE}}
    callers = {"billing": {**CALLERS["billing"], "templates": ["only-this-template"]}}
    gw = await make_gateway(auth=auth, callers=callers)
    async with grpc.aio.insecure_channel(gw.address) as channel:
        request = send_request()
        request.delivery.destinations.append(delivery_pb2.Destination(surface=delivery_pb2.SURFACE_SBERBOX))
        code, _, metadata = await _refused(
            async_stub(channel).Send(request, metadata=bearer(signer.token(BILLING)), timeout=5)
        )
    assert (code, metadata["refused"]) == ("PERMISSION_DENIED", "template")
    assert await admin.sends() == []


async def test_the_caller_is_named_in_logs_spans_and_metrics(
    make_gateway: GatewayFactory, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry = Telemetry.from_providers(tracer_provider, MeterProvider(metric_readers=[reader]), salt="s")
    auth = {"mode": "jwt", "jwt": {"jwks_file": signer.jwks, "issuer": ISSUER, "audience": AUDIENCE}}
    gw = await make_gateway(auth=auth, callers=CALLERS, telemetry=telemetry)
    token = signer.token(BILLING)
    caplog.set_level(logging.INFO, logger="gateway.calls")
    async with grpc.aio.insecure_channel(gw.address) as channel:
        stub = async_stub(channel)
        await stub.Send(send_request(), metadata=bearer(token), timeout=5)
        await _refused(stub.Send(send_request(profile="marketing"), metadata=bearer(token), timeout=5))
        await _refused(stub.Send(send_request(), timeout=5))
    callers = [getattr(r, "caller", None) for r in caplog.records if r.name == "gateway.calls"]
    assert callers == ["billing", "billing", "(unidentified)"]
    # ...and on the line the log handler writes (the formatters keep an allow-list of fields).
    written = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "gateway.calls"]
    assert [line.get("caller") for line in written] == callers
    assert not any(token in r.getMessage() or token in str(r.__dict__) for r in caplog.records)
    server_spans = [s for s in spans.get_finished_spans() if s.name.endswith("PushService/Send")]
    assert [(s.attributes or {}).get("smartpush.caller") for s in server_spans] == ["billing", "billing", None]
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {
        m.name: list(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    durations = {
        (p.attributes["smartpush.caller"], p.attributes["rpc.grpc.status_code"])
        for p in points["rpc.server.call.duration"]
    }
    assert durations == {("billing", 0), ("billing", 7), ("(unidentified)", 16)}
    refusals = {
        (p.attributes["smartpush.error_reason"], p.attributes["smartpush.caller"]): p.value
        for p in points["smartpush.refusals"]
    }
    assert refusals == {
        ("ERROR_REASON_CALLER_NOT_ALLOWED", "billing"): 1,
        ("ERROR_REASON_CALLER_UNAUTHENTICATED", "(unidentified)"): 1,
    }


async def test_mtls_names_callers_by_their_certificate(
    make_gateway: GatewayFactory, tmp_path: Path, admin: EmulatorAdmin
) -> None:
    certs = make_server_certs(tmp_path)
    spiffe = "spiffe://cluster.local/ns/billing/sa/api"
    callers = {
        "billing": {"match": spiffe, "profiles": ["default"], "projects": ["*"], "templates": ["*"]},
        "legacy": {"match": "legacy-batch", "profiles": ["default"], "projects": [PROJECT], "templates": ["*"]},
    }
    gw = await make_gateway(
        auth={"mode": "mtls"},
        callers=callers,
        tls_cert_file=certs.cert,
        tls_key_file=certs.key,
        tls_client_ca_file=certs.ca,
    )

    def channel(cert: bytes | None, key: bytes | None, ca: bytes | None = None) -> grpc.aio.Channel:
        creds = grpc.ssl_channel_credentials(ca or certs.ca.read_bytes(), key, cert)
        return grpc.aio.secure_channel(gw.address, creds, options=[("grpc.enable_retries", 0)])

    by_uri = client_cert(certs, tmp_path, "ignored-cn", uri=spiffe, dns="billing.svc")
    by_cn = client_cert(certs, tmp_path, "legacy-batch")
    unknown = client_cert(certs, tmp_path, "someone", dns="someone.svc")
    (tmp_path / "other").mkdir()
    other_ca = make_server_certs(tmp_path / "other")
    untrusted = client_cert(other_ca, tmp_path, "legacy-batch")

    async with channel(*by_uri) as ch:
        assert (await async_stub(ch).Send(send_request(project_id="any-project"), timeout=5)).results
    async with channel(*by_cn) as ch:
        assert (await async_stub(ch).Send(send_request(), timeout=5)).results
        refused = await _refused(async_stub(ch).Send(send_request(project_id="any-project"), timeout=5))
        assert (refused[0], refused[2]["refused"]) == ("PERMISSION_DENIED", "project")
    async with channel(*unknown) as ch:
        refused = await _refused(async_stub(ch).Send(send_request(), timeout=5))
        assert (refused[0], refused[2]["refused"], refused[2]["value"]) == (
            "PERMISSION_DENIED",
            "caller",
            "someone.svc",
        )
    # The CLI reaches a TLS gateway with a client certificate.
    (tmp_path / "c.pem").write_bytes(by_cn[0])
    (tmp_path / "c.key").write_bytes(by_cn[1])
    cli = [CLI, "send", "--target", gw.address, "--project", PROJECT, "--sub", SUB, "--template", DEMO_TEMPLATE_ID,
           "--surface", "COMPANION", "--ca", str(certs.ca)]  # fmt: skip
    with_cert = [*cli, "--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "c.key")]
    sent = await asyncio.to_thread(subprocess.run, with_cert, capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    # No certificate, or one from another CA: the TLS handshake itself fails; nothing is sent.
    for cert, key in ((None, None), untrusted):
        async with channel(cert, key) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await async_stub(ch).Send(send_request(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(await admin.sends()) == 3


async def test_keys_from_a_jwks_url_and_a_rotation_without_restart(
    make_gateway: GatewayFactory, tmp_path: Path, admin: EmulatorAdmin
) -> None:
    from aiohttp import web

    first, second = Signer(tmp_path, kid="k1"), Signer(tmp_path, kid="k2")
    served = {"keys": json.loads(first.jwks.read_text())["keys"]}
    fetches = 0

    async def jwks(_: web.Request) -> web.Response:
        nonlocal fetches
        fetches += 1
        return web.json_response(served)

    async with http_server("GET", "/openid/v1/jwks", jwks) as url:
        auth = {"mode": "jwt", "jwt": {"jwks_url": url, "issuer": ISSUER, "audience": AUDIENCE}}
        clock = ShiftClock()
        gw = await make_gateway(auth=auth, callers=CALLERS, clock=clock)
        async with grpc.aio.insecure_channel(gw.address) as channel:
            stub = async_stub(channel)
            for _ in range(3):
                await stub.Send(send_request(), metadata=bearer(first.token(BILLING)), timeout=5)
            assert fetches == 1  # cached
            # The cluster rotates: a token signed by a key the gateway has not seen makes it refetch
            # (at most once every 10 s, so unknown key ids cannot make it fetch on every call).
            served["keys"].append(json.loads(second.jwks.read_text())["keys"][0])
            clock.offset += 11
            await stub.Send(send_request(), metadata=bearer(second.token(BILLING)), timeout=5)
            assert fetches == 2
            impostor = Signer(tmp_path / "..", kid="k3")
            code, reason, _ = await _refused(
                stub.Send(send_request(), metadata=bearer(impostor.token(BILLING)), timeout=5)
            )
            assert (code, reason) == ("UNAUTHENTICATED", "ERROR_REASON_CALLER_UNAUTHENTICATED")
    assert len(await admin.sends()) == 4


async def test_idempotency_keys_belong_to_their_caller(
    make_gateway: GatewayFactory, signer: Signer, admin: EmulatorAdmin
) -> None:
    auth = {"mode": "jwt", "jwt": {"jwks_file": signer.jwks, "issuer": ISSUER, "audience": AUDIENCE}}
    other = "system:serviceaccount:shop:api"
    callers = {**CALLERS, "shop": {**CALLERS["billing"], "match": other}}
    gw = await make_gateway(auth=auth, callers=callers)
    async with grpc.aio.insecure_channel(gw.address) as channel:
        stub = async_stub(channel)
        request = send_request(idempotency_key="order-1")
        first = await stub.Send(request, metadata=bearer(signer.token(BILLING)), timeout=5)
        mine = await stub.Send(request, metadata=bearer(signer.token(BILLING)), timeout=5)
        theirs = await stub.Send(request, metadata=bearer(signer.token(other)), timeout=5)
    assert (first.replayed, mine.replayed, theirs.replayed) == (False, True, False)
    assert theirs.rq_uid != first.rq_uid
    assert len(await admin.sends()) == 2
