"""An OTLP receiver (HTTP/protobuf and gRPC) that accepts and discards, so "telemetry on" pays the
real export cost."""

from __future__ import annotations

import argparse
import asyncio

import grpc
import uvloop
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

COUNTS = {"traces": 0, "metrics": 0}


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        COUNTS["traces"] += request.ByteSize()
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    async def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: object
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        COUNTS["metrics"] += request.ByteSize()
        return metrics_service_pb2.ExportMetricsServiceResponse()


async def main(port: int, grpc_port: int | None) -> None:
    async def traces(request: web.Request) -> web.Response:
        COUNTS["traces"] += len(await request.read())
        return web.Response(body=trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

    async def metrics(request: web.Request) -> web.Response:
        COUNTS["metrics"] += len(await request.read())
        return web.Response(body=metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString())

    async def counts(request: web.Request) -> web.Response:
        return web.json_response(COUNTS)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes([web.post("/v1/traces", traces), web.post("/v1/metrics", metrics), web.get("/counts", counts)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    if grpc_port is not None:
        server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(), server)  # type: ignore[no-untyped-call]
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(), server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"127.0.0.1:{grpc_port}")
        await server.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True, help="OTLP/HTTP")
    parser.add_argument("--grpc-port", type=int, help="also OTLP/gRPC")
    args = parser.parse_args()
    uvloop.run(main(args.port, args.grpc_port))
