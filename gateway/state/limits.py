"""Budgets kept in the state store: a caller's rate (GCRA: `limit` per second, `size` burst) and
windows mirroring SmartPush's limits (a sliding-window counter: at most `limit` per `size`
seconds, the previous window weighted by how much of it still overlaps).

`decide` is the arithmetic, shared by the SQLite store; the Redis store runs the same in Lua.
Every limit of one call is decided together: either all are charged, or none is and the first
refusal says how long until it would pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Limit:
    key: str
    kind: Literal["rate", "window"]
    limit: float  # rate: per second; window: sends per window
    size: float  # rate: burst; window: its length in seconds
    subject: str  # what QuotaFailure names, e.g. "caller:billing" or "profile:default:per_minute"
    description: str


@dataclass(frozen=True, slots=True)
class Refused:
    limit: Limit
    retry_after_s: float


def window_keys(limit: Limit, now: float) -> tuple[str, str, float]:
    index = math.floor(now / limit.size)
    return f"{limit.key}:{index}", f"{limit.key}:{index - 1}", now - index * limit.size


def quota_keys(limits: Sequence[Limit], now: float) -> list[str]:
    """Every counter `decide` may read for these limits at `now`, to fetch them in one go."""
    keys: list[str] = []
    for limit in limits:
        if limit.kind == "rate":
            keys.append(limit.key)
        else:
            current, previous, _ = window_keys(limit, now)
            keys += (current, previous)
    return keys


def decide(
    limits: Sequence[Limit], now: float, read: Callable[[str], float], counts: Sequence[int] | None = None
) -> tuple[Refused | None, list[tuple[str, float, float]]]:
    """(the first refusal, or None and the writes: (key, value, ttl_s)) for charging `counts[i]`
    sends (one each by default: a lease asks for more, quotas.py) to every limit."""
    writes: list[tuple[str, float, float]] = []
    for i, limit in enumerate(limits):
        count = 1 if counts is None else counts[i]
        if limit.kind == "rate":
            interval = 1.0 / limit.limit
            tolerance = interval * limit.size
            arrival = max(read(limit.key), now) + interval * count
            if arrival - now > tolerance + _EPSILON:
                return Refused(limit, arrival - tolerance - now), []
            writes.append((limit.key, arrival, arrival - now + 1.0))
        else:
            current_key, previous_key, elapsed = window_keys(limit, now)
            current, previous = read(current_key), read(previous_key)
            weighted = previous * (limit.size - elapsed) / limit.size
            if weighted + current + count > limit.limit + _EPSILON:
                if current + 1 > limit.limit or previous == 0:
                    retry = limit.size - elapsed
                else:
                    retry = (limit.size - elapsed) - (limit.limit - 1 - current) * limit.size / previous
                return Refused(limit, max(retry, 0.001)), []
            writes.append((current_key, current + count, 2 * limit.size))
    return None, writes
