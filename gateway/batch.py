"""SendBatch: many sends in one call, one result per item in request order (never a bare count).

Each item goes through the same PushSender.send as a single Send: validated, authorized,
quota-checked, idempotent. Items run with bounded concurrency; each must finish a little before
the caller's deadline so the whole answer arrives in time. An item still running then is
reported DEADLINE_EXCEEDED — a keyed item keeps sending in the background (PushSender never
abandons a started keyed send), and retrying it with its key replays its answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from google.rpc import code_pb2, status_pb2
from smartpush.gateway.v1 import errors_pb2, push_service_pb2

from gateway.clock import Clock
from gateway.errors import FieldViolation, GatewayError, internal, invalid_argument, to_rpc_status
from gateway.push import PushSender
from gateway.telemetry import Telemetry

log = logging.getLogger(__name__)
MAX_ITEMS = 1000
CONCURRENCY = 32  # items of one batch in flight at once; the process-wide cap still applies
# What is kept back from the caller's deadline to answer the batch itself.
ANSWER_MARGIN_S = 0.1
OK = status_pb2.Status(code=code_pb2.OK)


def _out_of_time(rq_uid: str, keyed: bool) -> status_pb2.Status:
    hint = "; it keeps sending: retry with its idempotency key to get its answer" if keyed else ""
    return to_rpc_status(
        GatewayError(
            errors_pb2.ERROR_REASON_DEADLINE_TOO_SHORT,
            f"the batch's deadline passed before this item finished{hint}",
            rq_uid=rq_uid,
        )
    )


class BatchSender:
    def __init__(self, sender: PushSender, clock: Clock, telemetry: Telemetry, concurrency: int = CONCURRENCY) -> None:
        self._sender = sender
        self._t = telemetry
        self._clock = clock
        self._concurrency = concurrency

    async def send(
        self, requests: Sequence[push_service_pb2.SendRequest], deadline: float | None
    ) -> list[push_service_pb2.SendBatchResult]:
        if not requests:
            raise invalid_argument([FieldViolation("requests", "at least one request")])
        if len(requests) > MAX_ITEMS:
            raise invalid_argument([FieldViolation("requests", f"at most {MAX_ITEMS} requests, got {len(requests)}")])
        self._t.batch_size.record(len(requests))
        item_deadline = deadline - ANSWER_MARGIN_S if deadline is not None else None
        gate = asyncio.Semaphore(self._concurrency)
        return list(await asyncio.gather(*(self._item(r, item_deadline, gate) for r in requests)))

    async def _item(
        self, request: push_service_pb2.SendRequest, deadline: float | None, gate: asyncio.Semaphore
    ) -> push_service_pb2.SendBatchResult:
        key = self._sender.key(request)
        rq_uid = key.rq_uid
        async with gate:
            left = None if deadline is None else deadline - self._clock.monotonic()
            if left is not None and left <= 0:
                return push_service_pb2.SendBatchResult(status=_out_of_time(rq_uid, bool(request.idempotency_key)))
            try:
                async with asyncio.timeout(left):
                    response = await self._sender.send(request, key, deadline)
            except TimeoutError:
                return push_service_pb2.SendBatchResult(status=_out_of_time(rq_uid, bool(request.idempotency_key)))
            except GatewayError as err:
                if err.rq_uid is None:
                    err.rq_uid = rq_uid
                return push_service_pb2.SendBatchResult(status=to_rpc_status(err))
            except Exception:
                log.exception("unexpected failure in a batch item", extra={"rq_uid": rq_uid})
                return push_service_pb2.SendBatchResult(status=to_rpc_status(internal(rq_uid)))
        return push_service_pb2.SendBatchResult(status=OK, response=response)
