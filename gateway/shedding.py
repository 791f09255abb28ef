"""Load shedding: refuse at once what this process cannot take now, instead of letting calls
queue into their deadlines (sygnal's ConcurrencyLimitedPushkin is the model).

Two caps per process: API calls in progress (checked at the edge) and sends waiting on SmartPush
(checked just before the upstream call). Beyond either, the answer is UNAVAILABLE / OVERLOADED
with a retry delay: nothing was sent, and another replica may have room.
"""

from __future__ import annotations

from types import TracebackType

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

    def take(self) -> UpstreamSlots:
        """`with slots.take():` one slot for the block, or OVERLOADED now. (A class's __enter__ and
        __exit__, not @contextmanager: that is a generator and four calls per send.)"""
        return self

    def __enter__(self) -> None:
        if self.in_use >= self.limit:
            raise overloaded("sends waiting on SmartPush", self.limit, self._retry_after_s)
        self.in_use += 1

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.in_use -= 1
