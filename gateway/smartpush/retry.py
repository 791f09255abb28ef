"""Backoff with full jitter and Retry-After parsing (design §5: one retry layer only)."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable


def backoff_delay(attempt: int, initial: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, initial * 2**attempt)]."""
    return float(rand()) * min(cap, initial * (2.0**attempt))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)
