"""Idempotency keys: a repeated call with the same key and request replays the first answer.

In-process and bounded (LRU + TTL). Only successful answers are kept, so a failed call
can be retried with the same key; concurrent calls with one key share one upstream call.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from smartpush.gateway.v1 import errors_pb2, push_service_pb2

from gateway.clock import Clock
from gateway.errors import GatewayError

Response = push_service_pb2.SendResponse


def scoped_key(profile: str, project_id: str, key: str) -> str:
    return f"{profile}\0{project_id}\0{key}"


def rq_uid_for(scoped: str) -> str:
    """A stable uuid4-shaped RqUID for a key, so SmartPush sees the same id on a repeated call."""
    return str(uuid.UUID(bytes=hashlib.sha256(scoped.encode()).digest()[:16], version=4))


def fingerprint(req: push_service_pb2.SendRequest) -> bytes:
    return hashlib.sha256(req.SerializeToString(deterministic=True)).digest()


@dataclass(slots=True)
class _Entry:
    fingerprint: bytes
    expires_at: float
    response: Response


class IdempotencyCache:
    def __init__(self, clock: Clock, ttl_s: float, max_entries: int) -> None:
        self._clock = clock
        self._ttl = ttl_s
        self._max = max_entries
        self._done: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, tuple[bytes, asyncio.Future[Response]]] = {}

    async def run(self, key: str, fp: bytes, call: Callable[[], Awaitable[Response]]) -> Response:
        now = self._clock.monotonic()
        entry = self._done.get(key)
        if entry is not None and entry.expires_at > now:
            self._check(entry.fingerprint, fp)
            replay = Response()
            replay.CopyFrom(entry.response)
            replay.replayed = True
            return replay
        if key in self._inflight:
            other_fp, fut = self._inflight[key]
            self._check(other_fp, fp)
            shared = Response()
            shared.CopyFrom(await asyncio.shield(fut))
            shared.replayed = True
            return shared
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = (fp, fut)
        try:
            response = await call()
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            fut.set_result(response)
            self._remember(key, fp, response)
            return response
        finally:
            del self._inflight[key]

    def _remember(self, key: str, fp: bytes, response: Response) -> None:
        self._done[key] = _Entry(fp, self._clock.monotonic() + self._ttl, response)
        self._done.move_to_end(key)
        while len(self._done) > self._max:
            self._done.popitem(last=False)

    @staticmethod
    def _check(stored: bytes, fp: bytes) -> None:
        if stored != fp:
            raise GatewayError(
                errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
                "this idempotency key was already used with a different request",
            )
