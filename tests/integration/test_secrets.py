"""No secret, Basic credential or bearer token appears in logs, error messages or error details."""

from __future__ import annotations

import base64
import logging

import grpc
import pytest
from pydantic import SecretStr
from smartpush.gateway.v1 import delivery_pb2 as d
from smartpush.gateway.v1 import push_service_pb2
from smartpush_gateway_client.errors import decode

from gateway.config import ProfileSettings
from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET, EmulatorServer
from gateway.logs import JsonFormatter, TextFormatter
from tests.conftest import GatewayFactory
from tests.helpers import EmulatorAdmin, async_stub, send_request

INLINE_ID, INLINE_SECRET = "inline-client", "inline-s3cr3t-value"


async def test_no_secret_or_token_in_logs_or_errors(
    make_gateway: GatewayFactory,
    admin: EmulatorAdmin,
    emulator: EmulatorServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await admin.config(
        clients={DEMO_CLIENT_ID: {"secret": DEMO_SECRET}, INLINE_ID: {"secret": INLINE_SECRET}}, token_ttl_s=600
    )
    gw = await make_gateway(
        allow_inline_credentials=True,
        profiles={
            "default": ProfileSettings(client_id=DEMO_CLIENT_ID, secret=SecretStr(DEMO_SECRET)),
            "wrong": ProfileSettings(client_id=DEMO_CLIENT_ID, secret=SecretStr("wrong-" + DEMO_SECRET)),
        },
    )
    errors: list[str] = []
    async with grpc.aio.insecure_channel(gw.address) as ch:
        stub = async_stub(ch)
        await stub.Send(send_request(d.SURFACE_COMPANION), timeout=5)
        inline = push_service_pb2.Credentials(client_id=INLINE_ID, secret=INLINE_SECRET)
        await stub.Send(send_request(credentials=inline), timeout=5)
        seen_tokens = set(emulator.state.tokens)
        await admin.expire_tokens()  # 401 -> refresh -> retry
        await stub.Send(send_request(), timeout=5)
        await admin.next_fault(http_status=503, count=10)  # retries, then UNAVAILABLE
        bad_inline = push_service_pb2.Credentials(client_id=INLINE_ID, secret="bad-" + INLINE_SECRET)
        for req in (
            send_request(),
            send_request(profile="wrong"),
            send_request(credentials=bad_inline),
            send_request(sub=""),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Send(req, timeout=5)
            decoded = decode(caught.value)
            errors.append(repr(decoded.as_dict()))
            errors.append(repr(caught.value.trailing_metadata()))
    tokens = sorted(seen_tokens | set(emulator.state.tokens))
    assert len(tokens) >= 3
    secrets = [DEMO_SECRET, INLINE_SECRET, "bad-" + INLINE_SECRET, "wrong-" + DEMO_SECRET, *tokens]
    secrets += [
        base64.b64encode(f"{DEMO_CLIENT_ID}:{DEMO_SECRET}".encode()).decode(),
        base64.b64encode(f"{INLINE_ID}:{INLINE_SECRET}".encode()).decode(),
    ]
    assert len(caplog.records) > 10
    lines = [JsonFormatter().format(r) for r in caplog.records] + [TextFormatter().format(r) for r in caplog.records]
    lines += [r.getMessage() for r in caplog.records] + [repr(r.__dict__) for r in caplog.records]
    text = "\n".join(lines + errors)
    for secret in secrets:
        assert secret not in text
    # And the emulator's own record keeps only the auth scheme.
    assert all(r["authorization"] in ("Basic", "Bearer") for r in await admin.requests())
