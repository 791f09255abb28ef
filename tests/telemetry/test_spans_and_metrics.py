"""One connected trace per call, the caller's trace id continued; metrics for every signal."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from smartpush.gateway.v1 import delivery_pb2 as d

from tests.helpers import EmulatorAdmin, async_stub, send_request
from tests.telemetry.conftest import Captured

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = (("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"), ("tracestate", "vendor=x"))
SEND = "smartpush.gateway.v1.PushService/Send"


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def test_span_tree_of_one_send_continues_the_callers_trace(traced: Captured) -> None:
    async with grpc.aio.insecure_channel(traced.gateway.address) as ch:
        await async_stub(ch).Send(send_request(d.SURFACE_COMPANION, d.SURFACE_SBERBOX), metadata=TRACEPARENT, timeout=5)
    spans = traced.finished()
    server = _one(spans, SEND)
    assert server.kind == SpanKind.SERVER
    assert server.context is not None
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_ID
    assert {format(s.context.trace_id, "032x") for s in spans if s.context} == {TRACE_ID}
    attrs: Any = server.attributes
    assert (attrs["rpc.system"], attrs["rpc.service"], attrs["rpc.method"], attrs["rpc.grpc.status_code"]) == (
        "grpc", "smartpush.gateway.v1.PushService", "Send", 0,
    )  # fmt: skip
    assert tuple(attrs["smartpush.surfaces"]) == ("COMPANION", "SBERBOX")
    assert tuple(attrs["smartpush.status_codes"]) == (0, 0)
    assert attrs["smartpush.delivery_mode"] == "DELIVERY_MODE_BROADCAST"
    assert attrs["smartpush.profile"] == "default"
    assert len(attrs["smartpush.rq_uid"]) == 36
    assert attrs["smartpush.template_id"]

    children = _children(spans, server)
    assert [s.name for s in children] == ["smartpush.token", "POST"]
    token = children[0]
    assert token.attributes is not None
    assert token.attributes["smartpush.token.source"] == "refresh"
    token_http = _children(spans, token)
    assert [s.name for s in token_http] == ["POST"]
    assert token_http[0].attributes is not None
    assert token_http[0].attributes["smartpush.endpoint"] == "token"
    assert token_http[0].attributes["http.response.status_code"] == 200
    upstream = children[1]
    assert upstream.kind == SpanKind.CLIENT
    assert upstream.attributes is not None
    assert upstream.attributes["http.request.method"] == "POST"
    assert str(upstream.attributes["url.full"]).endswith("/api/v2/smartpush/apprequest")
    assert upstream.attributes["http.response.status_code"] == 200

    async with grpc.aio.insecure_channel(traced.gateway.address) as ch:
        await async_stub(ch).Send(send_request(), timeout=5)
    spans = traced.finished()
    second = [s for s in spans if s.name == SEND][-1]
    # Served from the token cache: no token span, only the upstream attempt.
    assert [s.name for s in _children(spans, second)] == ["POST"]


async def test_concurrent_cold_calls_wait_on_one_refresh(traced: Captured, admin: EmulatorAdmin) -> None:
    # A slow token answer keeps the refresh in flight while the other calls arrive (without it,
    # whether any call finds it in flight depends on the machine's timing).
    await admin.next_fault(endpoint="token", latency_ms=500)
    async with grpc.aio.insecure_channel(traced.gateway.address) as ch:
        stub = async_stub(ch)
        await asyncio.gather(*(stub.Send(send_request(), timeout=5) for _ in range(20)))
    spans = [s for s in traced.finished() if s.name == "smartpush.token"]
    sources = [str((s.attributes or {})["smartpush.token.source"]) for s in spans]
    assert sources.count("refresh") == 1  # the one that started it; the others waited for it (or hit the cache)
    assert "wait" in sources
    assert set(sources) <= {"refresh", "wait"}
    assert traced.metric_points()["smartpush.token.refreshes"][0].value == 1


async def test_a_retried_call_shows_each_attempt(traced: Captured, admin: EmulatorAdmin) -> None:
    await admin.next_fault(http_status=503, retry_after_s=0)
    async with grpc.aio.insecure_channel(traced.gateway.address) as ch:
        await async_stub(ch).Send(send_request(), timeout=5)
    spans = traced.finished()
    server = _one(spans, SEND)
    attempts = [s for s in _children(spans, server) if s.name == "POST"]
    assert len(attempts) == 2
    first, second = (s.attributes for s in attempts)
    assert first is not None
    assert second is not None
    assert (first["http.response.status_code"], first["smartpush.retry_reason"]) == (503, "server")
    assert attempts[0].status.status_code == StatusCode.ERROR
    assert (second["http.response.status_code"], second["http.request.resend_count"]) == (200, 1)
    points = traced.metric_points()
    assert sum(p.value for p in points["smartpush.retries"]) == 1
    assert {p.attributes["smartpush.retry_reason"] for p in points["smartpush.retries"]} == {"server"}


async def test_errors_set_status_code_and_reason(traced: Captured) -> None:
    bad = send_request()
    bad.delivery.template_content.mobile_app_parameters.button_text = "x" * 31
    async with grpc.aio.insecure_channel(traced.gateway.address) as ch:
        with pytest.raises(grpc.aio.AioRpcError):
            await async_stub(ch).Send(bad, timeout=5)
    server = _one(traced.finished(), SEND)
    assert server.status.status_code == StatusCode.ERROR
    assert server.attributes is not None
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert server.attributes["smartpush.error_reason"] == "ERROR_REASON_INVALID_REQUEST"
    failures = traced.metric_points()["smartpush.validation.failures"]
    assert [(p.attributes["smartpush.validation.field"], p.value) for p in failures] == [
        ("delivery.template_content.mobile_app_parameters.button_text", 1)
    ]


async def test_health_and_reflection_make_no_spans(traced: Captured) -> None:
    async with grpc.aio.insecure_channel(traced.gateway.address) as ch:
        health: Any = health_pb2_grpc.HealthStub(ch)
        for _ in range(3):
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert traced.finished() == []
    assert "rpc.server.call.duration" not in traced.metric_points()


async def test_metrics(traced: Captured, admin: EmulatorAdmin) -> None:
    await admin.config(surface_status={"SBERBOX": 1004})
    async with grpc.aio.insecure_channel(traced.gateway.address) as ch:
        stub = async_stub(ch)
        for _ in range(3):
            await stub.Send(send_request(d.SURFACE_COMPANION, d.SURFACE_SBERBOX), timeout=5)
    points = traced.metric_points()
    rpc = points["rpc.server.call.duration"]
    assert [(p.attributes["rpc.method"], p.attributes["rpc.grpc.status_code"], p.count) for p in rpc] == [
        ("Send", 0, 3)
    ]
    results = {
        (p.attributes["smartpush.surface"], p.attributes["smartpush.status_code"]): p.value
        for p in points["smartpush.results"]
    }
    assert results == {("COMPANION", 0): 3, ("SBERBOX", 1004): 3}
    upstream = {
        (p.attributes["smartpush.endpoint"], p.attributes["http.response.status_code"]): p.count
        for p in points["http.client.request.duration"]
    }
    assert upstream == {("token", 200): 1, ("extended", 200): 3}
    assert [(p.attributes["outcome"], p.value) for p in points["smartpush.token.refreshes"]] == [("success", 1)]
    assert [p.value for p in points["rpc.server.active_requests"]] == [0]
    # The state store's files on disk, read at collection: the database has its schema and records.
    files = {p.attributes["smartpush.state.file"]: p.value for p in points["smartpush.state.file.size"]}
    assert set(files) <= {"database", "wal"}, files
    assert files["database"] + files.get("wal", 0) > 0, files
