"""Quota leases: a process takes several sends' worth of a budget from the state store at once
and spends them locally, so most sends of a busy caller or project cost no store round trip.

Exactness is kept where it matters. Units are charged in the store before any is spent, so no
budget is ever exceeded, across every process and replica. A lease is asked only of budgets large
enough (`share` of the limit, at most MAX_LEASE sends); when the store cannot grant a lease, the
send is charged alone — so a nearly spent budget is counted send by send, as without leases.
What a lease costs: units a process took but did not spend before the lease ended (`lease_s`, or
its window's end) are lost to that window, at most a lease's worth per process — a send refused a
little early, never one let through too many.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from gateway.clock import Clock
from gateway.state.limits import Limit

MAX_LEASE = 64  # sends per lease: bounds what an idle process can hold back
_KEPT = 4096  # leases held at once (per-user windows make many): the oldest go first


class LeaseBook:
    def __init__(self, share: float, lease_s: float, clock: Clock) -> None:
        self._share = share
        self._lease_s = lease_s
        self._clock = clock
        self._held: OrderedDict[str, list[float]] = OrderedDict()  # key -> [units left, ends at]

    def size(self, limit: Limit) -> int:
        """Sends to ask for at once for this limit: its share, at least 1, at most MAX_LEASE."""
        budget = limit.size if limit.kind == "rate" else limit.limit  # a rate's burst, a window's limit
        return max(1, min(MAX_LEASE, math.floor(budget * self._share)))

    def lacking(self, limits: list[Limit]) -> list[Limit]:
        """The limits without a unit in hand now."""
        now = self._clock.time()
        held = self._held
        out = []
        for limit in limits:
            lease = held.get(limit.key)
            if lease is None or lease[0] < 1 or lease[1] <= now:
                out.append(limit)
        return out

    def grant(self, limit: Limit, units: int) -> None:
        now = self._clock.time()
        ends = now + self._lease_s
        if limit.kind == "window":  # a window's units are that window's: never carried into the next
            ends = min(ends, (math.floor(now / limit.size) + 1) * limit.size)
        lease = self._held.get(limit.key)
        if lease is not None and lease[1] > now:
            lease[0] += units
            lease[1] = min(lease[1], ends)
        else:
            self._held[limit.key] = [units, ends]
        self._held.move_to_end(limit.key)
        if len(self._held) > _KEPT:
            self._held.popitem(last=False)

    def spend(self, limits: list[Limit]) -> None:
        """One unit of each (each must be in hand: `lacking` returned none of them)."""
        for limit in limits:
            self._held[limit.key][0] -= 1
