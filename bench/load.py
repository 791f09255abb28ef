"""A load generator process: `concurrency` callers in a closed loop for `duration` seconds.

Modes: `grpc` (PushService.Send over several channels), `batch` (PushService.SendBatch of
`--batch` requests; a latency per batch, `recipients` counted) or `http` (SmartPush's extended
endpoint directly, to measure what the gateway adds). `--token` sends a bearer token (the gateway
identifies callers; echo and the forwarder ignore it); `--keyed` gives every Send its own
idempotency key. Prints one JSON line of results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import aiohttp
import grpc
import uvloop
from smartpush.gateway.v1 import delivery_pb2, push_service_pb2, push_service_pb2_grpc, template_pb2

from gateway.config import ProfileSettings, WireSettings
from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET, DEMO_TEMPLATE_ID
from gateway.smartpush import wire

REQUEST = push_service_pb2.SendRequest(
    project_id="bench-project",
    sub="bench-user",
    delivery=delivery_pb2.DeliveryConfig(
        delivery_mode=delivery_pb2.DELIVERY_MODE_BROADCAST,
        destinations=[delivery_pb2.Destination(surface=delivery_pb2.SURFACE_COMPANION)],
        template_content=template_pb2.TemplateContent(id=DEMO_TEMPLATE_ID),
    ),
)


async def _grpc(
    target: str,
    concurrency: int,
    duration: float,
    channels: int,
    batch: int,
    token: str | None,
    keyed: bool,
    users: int = 1,
) -> dict[str, Any]:
    chans = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(channels)
    ]
    stubs = [push_service_pb2_grpc.PushServiceStub(c) for c in chans]
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    for s in stubs:
        await s.Send(REQUEST, timeout=10, metadata=metadata)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    many = push_service_pb2.SendBatchRequest(requests=[REQUEST] * batch)

    async def caller(i: int) -> None:
        nonlocal errors
        stub = stubs[i % len(stubs)]
        request, n = push_service_pb2.SendRequest(), 0
        request.CopyFrom(REQUEST)
        while (start := time.perf_counter()) < deadline:
            try:
                if batch:
                    reply = await stub.SendBatch(many, timeout=30, metadata=metadata)
                    errors += sum(1 for r in reply.results if r.status.code != 0)
                else:
                    n += 1
                    if users > 1:  # each send to another user: per-user quota windows apart
                        request.sub = f"bench-user-{(i * 7919 + n) % users}"
                    if keyed:  # a new key per send: every one is claimed and recorded in the store
                        request.idempotency_key = f"{os.getpid()}-{i}-{n}"
                    await stub.Send(request, timeout=10, metadata=metadata)
            except grpc.aio.AioRpcError:
                errors += batch or 1
                continue
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    for c in chans:
        await c.close(None)
    return {"latencies": latencies, "errors": errors, "recipients": len(latencies) * (batch or 1)}


async def _http(base: str, concurrency: int, duration: float) -> dict[str, Any]:
    body = wire.encode(wire.extended_request(REQUEST, WireSettings(), 1))
    creds = ProfileSettings(client_id=DEMO_CLIENT_ID, secret=DEMO_SECRET)  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as http:
        headers = {"RqUID": "6f1d5a0e-5b7e-4c35-9d1e-1d2b3c4d5e6f", "Content-Type": "application/x-www-form-urlencoded"}
        headers["Authorization"] = aiohttp.encode_basic_auth(creds.client_id, creds.resolve_secret())
        async with http.post(f"{base}/api/v2/oauth", data=b"scope=SMART_PUSH", headers=headers) as r:
            token = (await r.json())["access_token"]
        send_headers = {
            "Authorization": f"Bearer {token}",
            "RqUID": "6f1d5a0e-5b7e-4c35-9d1e-1d2b3c4d5e6f",
            "Content-Type": "application/json",
        }
        url = f"{base}/api/v2/smartpush/apprequest"
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + duration

        async def caller() -> None:
            nonlocal errors
            while (start := time.perf_counter()) < deadline:
                async with http.post(url, data=body, headers=send_headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return {"latencies": latencies, "errors": errors}


async def main(args: argparse.Namespace) -> None:
    if args.mode in ("grpc", "batch"):
        batch = args.batch if args.mode == "batch" else 0
        result = await _grpc(
            args.target, args.concurrency, args.duration, args.channels, batch, args.token, args.keyed, args.users
        )
    else:
        result = await _http(args.target, args.concurrency, args.duration)
    print(json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["grpc", "batch", "http"], default="grpc")
    parser.add_argument("--batch", type=int, default=100, help="requests per SendBatch (mode batch)")
    parser.add_argument("--target", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--token", help="a bearer token for the authorization metadata")
    parser.add_argument("--keyed", action="store_true", help="an idempotency key per Send")
    parser.add_argument("--users", type=int, default=1, help="subs the Sends go to, in turn (1: one user)")
    uvloop.run(main(parser.parse_args()))
