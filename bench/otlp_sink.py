"""An OTLP/HTTP receiver that accepts and discards, so "telemetry on" pays the real export cost."""

from __future__ import annotations

import argparse
import asyncio

import uvloop
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

COUNTS = {"traces": 0, "metrics": 0}


async def main(port: int) -> None:
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
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(main(parser.parse_args().port))
