"""Readiness and liveness on grpc.health.v1, for orchestrators' native gRPC probes.

- `liveness`: SERVING while the event loop answers; it never depends on SmartPush, so an
  upstream outage does not get every replica restarted.
- `` (the overall service) and each API service: SERVING when the gateway can serve, i.e. its
  configuration loaded and a token for the default profile is cached or was just obtained.
  A replica whose credentials are refused stays out of the load balancer instead of answering
  every call with UNAVAILABLE; one that already holds a valid token stays in through a short
  SmartPush outage (the token still serves).

- `smartpush.gateway.state`: SERVING while the state store answers. It is reported on its own and
  does not take the replica out: with the store down, keyless sends still work everywhere, while
  keyed sends and consent checks fail closed on every replica alike (the store is shared), so
  draining replicas would only turn a partial outage into a full one. Alert on it.

The check also warms the token cache, so the first call after a rollout does not pay for it.
While not ready it is repeated sooner than the interval (from 0.5 s, doubling).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # stubs lack aio

from gateway.errors import GatewayError
from gateway.smartpush.tokens import TokenProvider
from gateway.state.store import StateStore

LIVENESS = "liveness"
STATE_STORE = "smartpush.gateway.state"
_FIRST_RETRY_S = 0.5
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

log = logging.getLogger(__name__)


class Readiness:
    def __init__(
        self,
        health: health_aio.HealthServicer,
        services: Iterable[str],
        provider: TokenProvider | None,
        interval_s: float,
        timeout_s: float,
        store: StateStore | None = None,
    ) -> None:
        self._health = health
        self._services = ("", *services)
        self._provider = provider
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self._store = store
        self.ready: bool | None = None
        self.store_ok: bool | None = None

    async def start(self) -> None:
        await self._health.set(LIVENESS, SERVING)
        await self.check()
        self._task = asyncio.create_task(self._loop(), name="readiness")

    async def check(self) -> bool:
        """One readiness evaluation; publishes the result on the health service."""
        await self._check_store()
        ok = True
        if self._provider is not None:
            try:
                ok = await asyncio.wait_for(self._provider.ensure(), self._timeout_s)
            except Exception:  # a failed token request, a timeout: both mean "cannot serve"
                ok = False
        if ok != self.ready:
            log.log(
                logging.INFO if ok else logging.WARNING,
                "ready" if ok else "not ready: no token obtainable for the default profile",
                extra={"profile": self._provider.name if self._provider else None},
            )
        self.ready = ok
        status = SERVING if ok else NOT_SERVING
        for service in self._services:
            await self._health.set(service, status)
        return ok

    async def _check_store(self) -> None:
        if self._store is None:
            return
        try:
            await asyncio.wait_for(self._store.ping(), self._timeout_s)
            ok = True
        except (GatewayError, TimeoutError):
            ok = False
        if ok != self.store_ok:
            log.log(
                logging.INFO if ok else logging.ERROR,
                "state store reachable" if ok else "state store unreachable: keyed sends and consent checks fail",
                extra={"store": self._store.backend},
            )
        self.store_ok = ok
        await self._health.set(STATE_STORE, SERVING if ok else NOT_SERVING)

    async def _loop(self) -> None:
        # Not ready: look again soon (0.5 s, doubling up to the interval), so a replica that
        # started before SmartPush could answer joins the load balancer in seconds, not a whole
        # interval later; at most one token request per check either way.
        retry = _FIRST_RETRY_S
        while True:
            healthy = self.ready and self.store_ok is not False
            await asyncio.sleep(self._interval_s if healthy else min(retry, self._interval_s))
            await self.check()
            retry = _FIRST_RETRY_S if self.ready and self.store_ok is not False else retry * 2

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
