"""Known personal data and secrets never appear in clear in any exported span, metric or log line."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging

import grpc
import pytest
from smartpush.gateway.v1 import delivery_pb2 as d
from smartpush.gateway.v1 import push_service_pb2

from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET, EmulatorServer
from gateway.logs import JsonFormatter, TraceContextFilter
from gateway.telemetry.policy import SubHasher
from tests.helpers import EmulatorAdmin, async_stub, send_request
from tests.telemetry.conftest import Captured

SUB = "sub-of-a-real-person-7f3a9c"
NAME, ORDER = "Анна Каренина", "ORDER-SECRET-4711"
INLINE_ID, INLINE_SECRET = "inline-client", "inline-secret-value-93"


async def test_nothing_personal_or_secret_leaves_in_clear(
    traced: Captured, admin: EmulatorAdmin, emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(TraceContextFilter())
    await admin.config(
        clients={DEMO_CLIENT_ID: {"secret": DEMO_SECRET}, INLINE_ID: {"secret": INLINE_SECRET}},
        templates={"tmpl-pii": {"header_variables": ["name"], "body_variables": ["order"]}},
    )
    gw = traced.gateway
    gw.settings.allow_inline_credentials = True
    tokens_seen: set[str] = set()
    async with grpc.aio.insecure_channel(gw.address) as ch:
        stub = async_stub(ch)

        def request(**kw: object) -> push_service_pb2.SendRequest:
            req = send_request(d.SURFACE_COMPANION, template_id="tmpl-pii", sub=SUB, **kw)  # type: ignore[arg-type]
            req.delivery.template_content.header_values["name"] = NAME
            req.delivery.template_content.body_values["order"] = ORDER
            return req

        await stub.Send(request(), timeout=5)
        inline = push_service_pb2.Credentials(client_id=INLINE_ID, secret=INLINE_SECRET)
        await stub.Send(request(credentials=inline), timeout=5)
        tokens_seen |= set(emulator.state.tokens)
        await admin.expire_tokens()
        await stub.Send(request(), timeout=5)  # 401 -> refresh -> retry
        tokens_seen |= set(emulator.state.tokens)
        await admin.next_fault(http_status=503, count=10, retry_after_s=0)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Send(request(), timeout=5)
        bad = request()
        bad.delivery.template_content.body_values["extra"] = NAME  # a violation keyed by user data
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Send(bad, timeout=5)
        bad_inline = push_service_pb2.Credentials(client_id=INLINE_ID, secret="wrong-" + INLINE_SECRET)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Send(request(credentials=bad_inline), timeout=5)

    spans = traced.finished()
    assert len(spans) > 20
    exported = [s.to_json() for s in spans]
    metrics = traced.metrics.get_metrics_data()
    assert metrics is not None
    exported.append(metrics.to_json())
    exported += [JsonFormatter().format(r) for r in caplog.records]
    text = "\n".join(exported)
    forbidden = {
        "sub": SUB,
        "header value": NAME,
        "body value": ORDER,
        "profile secret": DEMO_SECRET,
        "inline secret": INLINE_SECRET,
        "Basic credential": base64.b64encode(f"{DEMO_CLIENT_ID}:{DEMO_SECRET}".encode()).decode(),
        "inline Basic credential": base64.b64encode(f"{INLINE_ID}:{INLINE_SECRET}".encode()).decode(),
    }
    assert len(tokens_seen) >= 3
    forbidden.update({f"token {i}": t for i, t in enumerate(sorted(tokens_seen))})
    for what, value in forbidden.items():
        assert value not in text, f"{what} leaked"
    # The sub is there only as the salted hash, so one user's calls can still be joined.
    assert SubHasher("test-salt")(SUB) in text
    assert '"trace_id"' in text  # log lines carry the trace id


def test_the_sub_hash_is_the_salted_hmac_sha256_earlier_releases_wrote() -> None:
    # Dashboards join one user's calls across releases: the value must not change with the code.
    assert SubHasher("test-salt")("user-1") == hmac.new(b"test-salt", b"user-1", hashlib.sha256).hexdigest()[:24]
    # HMAC is built from SHA-256 states (RFC 2104): salts of a block and longer (hashed first) too.
    for salt in ("s" * 64, "long-salt-" * 10, "ключ"):
        for sub in ("", "user-1", "пользователь" * 20):
            expected = hmac.new(salt.encode(), sub.encode(), hashlib.sha256).hexdigest()[:24]
            assert SubHasher(salt)(sub) == expected
    assert SubHasher()("user-1") != SubHasher()("user-1")  # no salt: a random one per process
