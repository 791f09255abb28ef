"""Load shedding: refuse at once what this process cannot take now, instead of letting calls
queue into their deadlines (sygnal's ConcurrencyLimitedPushkin is the model).

Two caps per process: API calls in progress (checked at the edge) and sends waiting on SmartPush
(checked just before the upstream call). Beyond either, the answer is UNAVAILABLE / OVERLOADED
with a retry delay: nothing was sent, and another replica may have room.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from smartpush.gateway.v1 import errors_pb2

from gateway.errors import GatewayError


def overloaded(what: str, limit: int, retry_after_s: float) -> GatewayError:
    return GatewayError(
        errors_pb2.ERROR_REASON_OVERLOADED,
        f"this gateway process is at its limit of {limit} {what}; nothing was sent, retry shortly",
        retry_after_s=retry_after_s,
        metadata={"limit": str(limit), "what": what},
    )


class UpstreamSlots:
    """At most `limit` sends waiting on SmartPush; a send beyond it is refused, not queued."""

    def __init__(self, limit: int, retry_after_s: float) -> None:
        self.limit = limit
        self.in_use = 0
        self._retry_after_s = retry_after_s

    @contextmanager
    def take(self) -> Iterator[None]:
        if self.in_use >= self.limit:
            raise overloaded("sends waiting on SmartPush", self.limit, self._retry_after_s)
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
