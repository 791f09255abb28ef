"""PushService servicer: proto in -> PushSender -> proto out. Errors are the edge's business."""

from __future__ import annotations

from typing import Any

import grpc
from smartpush.gateway.v1 import push_service_pb2, push_service_pb2_grpc

from gateway.api.edge import current_call
from gateway.batch import BatchSender
from gateway.clock import Clock
from gateway.push import PushSender
from gateway.smartpush.surfaces import SURFACE_TO_WIRE
from gateway.telemetry import Telemetry


class PushServicer(push_service_pb2_grpc.PushServiceServicer):
    def __init__(self, sender: PushSender, clock: Clock, telemetry: Telemetry) -> None:
        self._sender = sender
        self._batch = BatchSender(sender, clock, telemetry)
        self._clock = clock

    def _deadline(self, context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
        remaining = context.time_remaining()
        return self._clock.monotonic() + remaining if remaining is not None else None

    async def Send(
        self, request: push_service_pb2.SendRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> push_service_pb2.SendResponse:
        deadline = self._deadline(context)
        call = current_call()
        key = self._sender.key(request)
        call.rq_uid = key.rq_uid
        # Held for the whole call: while a sub-message's wrapper lives, every later read of it (the
        # checks, the JSON, the results read each a few times) gets the same object back, where
        # each read would otherwise make a new one and drop it (~50 per send).
        delivery = request.delivery
        content, dests = delivery.template_content, delivery.destinations[:]
        call.fields.update(
            profile="inline" if request.HasField("credentials") else (request.profile or "default"),
            template_id=content.id[:64],
            surfaces=[SURFACE_TO_WIRE.get(d.surface, str(d.surface)) for d in dests[:8]],
            validate_only=request.validate_only,
        )
        response = await self._sender.send(request, key, deadline)
        call.fields.update(status_codes=[r.status_code for r in response.results[:]], replayed=response.replayed)
        return response

    async def SendBatch(
        self, request: push_service_pb2.SendBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> push_service_pb2.SendBatchResponse:
        results = await self._batch.send(request.requests, self._deadline(context))
        codes: dict[int, int] = {}
        for r in results:
            codes[r.status.code] = codes.get(r.status.code, 0) + 1
        current_call().fields.update(items=len(results), item_codes={str(k): v for k, v in sorted(codes.items())})
        return push_service_pb2.SendBatchResponse(results=results)
