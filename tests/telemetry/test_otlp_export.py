"""A real OTLP receiver on loopback (gRPC and HTTP/protobuf, built from opentelemetry-proto) gets the
spans and metrics a gateway process exports when OTEL_EXPORTER_OTLP_ENDPOINT points at it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.helpers import async_stub, free_port, send_request

BIN = Path(sys.executable).parent


@dataclass
class Received:
    spans: list[Any] = field(default_factory=list)  # (resource attributes, span)
    metrics: list[str] = field(default_factory=list)
    services: set[str] = field(default_factory=set)

    def take_traces(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        for rs in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
            self.services.add(attrs.get("service.name", ""))
            for ss in rs.scope_spans:
                self.spans.extend(ss.spans)

    def take_metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                self.metrics.extend(m.name for m in sm.metrics)


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    async def Export(self, request: Any, context: Any) -> Any:
        self.received.take_traces(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    async def Export(self, request: Any, context: Any) -> Any:
        self.received.take_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture
async def grpc_receiver() -> AsyncIterator[tuple[str, Received]]:
    received = Received()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(received), server)  # type: ignore[no-untyped-call]
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(received), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"http://127.0.0.1:{port}", received
    await server.stop(0)


@pytest.fixture
async def http_receiver() -> AsyncIterator[tuple[str, Received]]:
    received = Received()

    async def traces(request: web.Request) -> web.Response:
        received.take_traces(trace_service_pb2.ExportTraceServiceRequest.FromString(await request.read()))
        body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def metrics(request: web.Request) -> web.Response:
        received.take_metrics(metrics_service_pb2.ExportMetricsServiceRequest.FromString(await request.read()))
        body = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    app = web.Application()
    app.add_routes([web.post("/v1/traces", traces), web.post("/v1/metrics", metrics)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


async def _run_gateway_and_send(endpoint: str, protocol: str) -> None:
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": "gateway-under-test",
        "OTEL_METRIC_EXPORT_INTERVAL": "60000",  # metrics arrive with the flush on shutdown
    }
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "smartpush-gateway"), "serve", "--emulator", "--listen", "127.0.0.1:0",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        # The port the gateway bound (port 0: no race with another test for a "free" one).
        async with asyncio.timeout(30):
            while not (found := re.search(rb"listening on 127\.0\.0\.1:(\d+)", line := await proc.stdout.readline())):
                if not line:  # EOF: it exited; say why instead of reading an empty pipe forever
                    raise AssertionError(f"the gateway exited: {(await proc.stderr.read()).decode()[-2000:]}")
        port = int(found.group(1))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = async_stub(ch)
            await stub.Send(send_request(), timeout=10)
            bad = send_request(sub="")
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Send(bad, timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_otlp_export(
    protocol: str, grpc_receiver: tuple[str, Received], http_receiver: tuple[str, Received]
) -> None:
    endpoint, received = grpc_receiver if protocol == "grpc" else http_receiver
    await _run_gateway_and_send(endpoint, protocol)
    names = [s.name for s in received.spans]
    assert names.count("smartpush.gateway.v1.PushService/Send") == 2
    # The valid send's attempt and the token request (readiness fetched it at start: no call waited).
    assert names.count("POST") == 2
    assert received.services == {"gateway-under-test"}
    assert {
        "rpc.server.call.duration",
        "rpc.server.active_requests",
        "http.client.request.duration",
        "smartpush.results",
        "smartpush.token.refreshes",
        "smartpush.validation.failures",
    } <= set(received.metrics)
    server_spans = [s for s in received.spans if s.name == "smartpush.gateway.v1.PushService/Send"]
    assert len({s.trace_id for s in server_spans}) == 2  # one trace per call
