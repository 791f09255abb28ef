"""Idempotency keys across processes: one upstream delivery per key, its answer replayed everywhere.

A key is claimed in the shared store together with the request's fingerprint. The owner sends;
its answer is recorded for the TTL and replayed to any repeat on any process. A repeat that
arrives while the owner is still sending waits for the answer (bounded by its own deadline, then
ABORTED with a retry delay). A different request under the key is refused. A failed send gives
the key up, so the caller can retry it.

Once claimed, a send runs to its end even when the caller goes away (deadline, cancel): its
answer is recorded, and the caller's retry is replayed instead of sending again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from smartpush.gateway.v1 import errors_pb2, push_service_pb2

from gateway.clock import Clock
from gateway.entropy import random_bytes
from gateway.errors import GatewayError
from gateway.state.store import TOKEN_BYTES, Busy, Claimed, Replay, StateStore

Response = push_service_pb2.SendResponse
log = logging.getLogger(__name__)
_POLL_FIRST_S = 0.01
_POLL_MAX_S = 0.25


def _reused() -> GatewayError:
    return GatewayError(
        errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED, "this idempotency key was already used with a different request"
    )


class Idempotency:
    def __init__(self, store: StateStore, clock: Clock, ttl_s: float, lease_s: float) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl_s
        # How long a claim holds unless renewed; the owner renews it while it sends, so it lapses
        # only when its process died mid-send.
        self._lease = lease_s
        self._running: set[asyncio.Task[Response]] = set()

    async def run(
        self, key: str, fp: bytes, deadline: float | None, send: Callable[[], Awaitable[Response]]
    ) -> Response:
        """Send once per `key` (a SendKey's store key) across every process, or replay its answer."""
        wait = _POLL_FIRST_S
        give_up_at = deadline if deadline is not None else self._clock.monotonic() + self._lease
        while True:
            claim = await self._store.claim(key, fp, random_bytes(TOKEN_BYTES), self._lease, self._ttl)
            if isinstance(claim, Claimed):
                break
            if claim.fingerprint != fp:
                raise _reused()
            if isinstance(claim, Replay):
                replay = Response.FromString(claim.response)
                replay.replayed = True
                return replay
            assert isinstance(claim, Busy)
            left = give_up_at - self._clock.monotonic()
            if left <= wait:
                raise GatewayError(
                    errors_pb2.ERROR_REASON_IDEMPOTENCY_IN_PROGRESS,
                    "a call with this idempotency key is still being sent; retry to get its answer",
                    retry_after_s=_POLL_MAX_S,
                )
            await self._clock.sleep(wait)
            wait = min(wait * 2, _POLL_MAX_S)
        # Shielded: the caller may leave, the send and its record go on.
        task = asyncio.create_task(self._own(key, claim.token, fp, send))
        self._running.add(task)
        task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    def _settled(self, task: asyncio.Task[Response]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that left has no one else to re-raise it

    async def _own(self, key: str, token: bytes, fp: bytes, send: Callable[[], Awaitable[Response]]) -> Response:
        renewal = _Renewal(self, key, token)
        # The key is given up after the `except` block, not in it: a compiled coroutine must not
        # suspend while an exception is handled (pyproject's mypyc notes).
        failed: BaseException | None = None
        try:
            response = await send()
        except BaseException as exc:
            failed = exc
        renewal.stop()
        if failed is not None:
            try:
                await self._store.release(key, token)
            except GatewayError:
                log.warning("could not give up an idempotency key; it lapses with its lease", exc_info=True)
            raise failed
        try:
            await self._store.complete(key, fp, response.SerializeToString(), self._ttl)
        except GatewayError:
            # Sent, but not recorded: the answer still goes to the caller; a repeat within the
            # lease waits, after it would send again. Say so loudly.
            log.error("sent but could not record the answer of an idempotency key", exc_info=True)
        return response

    async def _renew(self, key: str, token: bytes) -> bool:
        try:
            return await self._store.renew(key, token, self._lease)
        except GatewayError:
            log.warning("could not renew an idempotency claim; retrying", exc_info=True)
            return True

    async def wait_idle(self, within_s: float) -> bool:
        """Wait for sends whose callers left (at shutdown)."""
        if not self._running:
            return True
        _, pending = await asyncio.wait(set(self._running), timeout=within_s)
        return not pending


class _Renewal:
    """Renews a claim every third of its lease while the send runs (a Retry-After may hold it
    long); if this process dies the claim lapses within one lease and the key can be sent by
    another. A timer, not a task: most sends end long before the first renewal is due, and then
    all this costs is scheduling and cancelling one timer (on the event loop's clock)."""

    __slots__ = ("_key", "_of", "_task", "_timer", "_token")

    def __init__(self, of: Idempotency, key: str, token: bytes) -> None:
        self._of, self._key, self._token = of, key, token
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(of._lease / 3, self._due)

    def _due(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        if await self._of._renew(self._key, self._token):
            self._timer = asyncio.get_running_loop().call_later(self._of._lease / 3, self._due)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
