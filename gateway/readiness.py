"""Readiness and liveness on grpc.health.v1, for orchestrators' native gRPC probes.

- `liveness`: SERVING while the event loop answers; it never depends on SmartPush, so an
  upstream outage does not get every replica restarted.
- `` (the overall service) and each API service: SERVING when the gateway can serve, i.e. its
  configuration loaded and a token for the default profile is cached or was just obtained.
  A replica whose credentials are refused stays out of the load balancer instead of answering
  every call with UNAVAILABLE; one that already holds a valid token stays in through a short
  SmartPush outage (the token still serves).

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

from gateway.smartpush.tokens import TokenProvider

LIVENESS = "liveness"
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
    ) -> None:
        self._health = health
        self._services = ("", *services)
        self._provider = provider
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self.ready: bool | None = None

    async def start(self) -> None:
        await self._health.set(LIVENESS, SERVING)
        await self.check()
        self._task = asyncio.create_task(self._loop(), name="readiness")

    async def check(self) -> bool:
        """One readiness evaluation; publishes the result on the health service."""
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

    async def _loop(self) -> None:
        # Not ready: look again soon (0.5 s, doubling up to the interval), so a replica that
        # started before SmartPush could answer joins the load balancer in seconds, not a whole
        # interval later; at most one token request per check either way.
        retry = _FIRST_RETRY_S
        while True:
            await asyncio.sleep(self._interval_s if self.ready else min(retry, self._interval_s))
            retry = _FIRST_RETRY_S if await self.check() else retry * 2

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
