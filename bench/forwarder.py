"""The reference: the least any gateway on this stack must do, and nothing more.

PushService.Send on grpc.aio (uvloop, like the gateway): build SmartPush's extended JSON for the
request with orjson, POST it with aiohttp and a Bearer token (one token, fetched at start), parse
the answer, return a SendResponse. No validation, identity, quotas, idempotency, retries, logs or
telemetry. The gateway's throughput and CPU per call are reported against this (bench/run.py).
"""

from __future__ import annotations

import argparse
import itertools
import uuid
from typing import Any

import aiohttp
import grpc
import orjson
import uvloop
from smartpush.gateway.v1 import delivery_pb2, push_service_pb2, push_service_pb2_grpc

from bench.echo import serve

MODES = {v.number: v.name.removeprefix("DELIVERY_MODE_") for v in delivery_pb2.DeliveryMode.DESCRIPTOR.values}
SURFACES = {v.number: v.name.removeprefix("SURFACE_") for v in delivery_pb2.Surface.DESCRIPTOR.values}
SURFACE_NUMBERS = {name: delivery_pb2.Surface.Value(f"SURFACE_{name}") for name in SURFACES.values()}
CHANNELS = {"COMPANION": "COMPANION_B2C", "SBOL": "SBOL", "TV": "SBERBOX_B2C"}


class Forwarder(push_service_pb2_grpc.PushServiceServicer):
    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.url, self.token = http, url, token
        self.ids = itertools.count(1)

    async def Send(self, request: Any, context: Any) -> Any:
        config = request.delivery
        content = config.template_content
        surfaces = [SURFACES[d.surface] for d in config.destinations]
        body = {
            "requestPayload": {
                "protocolVersion": "V1",
                "messageId": next(self.ids),
                "messageName": "SEND_PUSH",
                "payload": {
                    "sender": {"projectId": request.project_id},
                    "recipient": {"clientId": {"idType": "SUB", "id": request.sub}},
                    "deliveryConfig": {
                        "deliveryMode": MODES[config.delivery_mode],
                        "destinations": [
                            {
                                "channel": CHANNELS.get(s, s),
                                "surface": s,
                                "templateContent": {"id": content.id, "headerValues": {}, "bodyValues": {}},
                            }
                            for s in surfaces
                        ],
                    },
                },
            }
        }
        rq_uid = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {self.token}", "RqUID": rq_uid, "Content-Type": "application/json"}
        async with self.http.post(self.url, data=orjson.dumps(body), headers=headers) as answer:
            doc = orjson.loads(await answer.read())
        results = doc["payload"]["result"]
        results = results if isinstance(results, list) else [results]
        return push_service_pb2.SendResponse(
            rq_uid=rq_uid,
            response_id=doc.get("responseId", ""),
            results=[
                push_service_pb2.DestinationResult(
                    surface=SURFACE_NUMBERS.get(r["surface"], delivery_pb2.SURFACE_UNSPECIFIED),
                    status_code=r["status"]["code"],
                    description=r["status"].get("description", ""),
                    reported=True,
                )
                for r in results
            ],
        )

    async def SendBatch(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the reference forwards single Sends only")


async def main(listen: str, upstream: str, client_id: str, secret: str) -> None:
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    oauth = {
        "RqUID": str(uuid.uuid4()),
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": aiohttp.encode_basic_auth(client_id, secret),
    }
    async with http.post(f"{upstream}/api/v2/oauth", data=b"scope=SMART_PUSH", headers=oauth) as r:
        token = (await r.json())["access_token"]
    await serve(Forwarder(http, f"{upstream}/api/v2/smartpush/apprequest", token), listen)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True, help="SmartPush base URL (the emulator)")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--secret", required=True)
    a = parser.parse_args()
    uvloop.run(main(a.listen, a.upstream, a.client_id, a.secret))
