"""DeliveryService: the statuses SmartPush reported for a caller's sends, asked for or watched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from smartpush.gateway.v1 import delivery_service_pb2, delivery_service_pb2_grpc

from gateway.api.edge import Drain, current_caller
from gateway.clock import Clock
from gateway.delivery_status import DeliveryStatuses
from gateway.errors import FieldViolation, invalid_argument

pb = delivery_service_pb2
Context = grpc.aio.ServicerContext[Any, Any]
POLL_S = 0.2  # the store is shared by every replica: watching polls it, whoever received the callback
MAX_WATCHED = 100


class DeliveryServicer(delivery_service_pb2_grpc.DeliveryServiceServicer):
    def __init__(self, statuses: DeliveryStatuses, clock: Clock, drain: Drain) -> None:
        self._statuses = statuses
        self._clock = clock
        self._drain = drain

    async def GetDeliveryStatus(
        self, request: pb.GetDeliveryStatusRequest, context: Context
    ) -> pb.GetDeliveryStatusResponse:
        if not request.rq_uid:
            raise invalid_argument([FieldViolation("rq_uid", "required")])
        return pb.GetDeliveryStatusResponse(status=await self._statuses.status(request.rq_uid, current_caller().name))

    async def WatchDeliveryStatus(
        self, request: pb.WatchDeliveryStatusRequest, context: Context
    ) -> AsyncIterator[pb.WatchDeliveryStatusResponse]:
        if len(request.rq_uids) > MAX_WATCHED:
            raise invalid_argument([FieldViolation("rq_uids", f"at most {MAX_WATCHED}")])
        caller = current_caller().name
        watched = list(dict.fromkeys(request.rq_uids))
        for rq_uid in watched:
            await self._statuses.status(rq_uid, caller)  # unknown ones fail the call at once
        sent: dict[str, int] = {}
        since = self._clock.time() - 1.0 if not watched else 0.0
        while not self._drain.closing:
            if watched:
                changed = watched
            else:
                changed, since = await self._statuses.feed(caller, since)
            for rq_uid in changed:
                status = await self._statuses.status(rq_uid, caller)
                if status.callbacks_received != sent.get(rq_uid, 0):
                    sent[rq_uid] = status.callbacks_received
                    yield pb.WatchDeliveryStatusResponse(status=status)
            await self._clock.sleep(POLL_S)
