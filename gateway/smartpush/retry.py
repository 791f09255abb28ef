"""Retry policy and attempt classifier for SmartPush calls (python-api-core's retry_base shape).

Design §5: one retry layer only, here; transport errors, 429 and 5xx; full jitter; Retry-After
honoured; never past the deadline. The loop that applies them is in `client.py`.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from gateway.config import SmartPushSettings

FailureKind = Literal["transport", "rate_limited", "server", "unauthorized"]


@dataclass(frozen=True, slots=True)
class Failure:
    """An attempt that did not give an answer to classify."""

    kind: FailureKind
    detail: str
    http_status: int | None = None
    retry_after_s: float | None = None


def classify_attempt(http_status: int, retry_after_s: float | None) -> Failure | None:
    """None: an answer to classify (2xx, 4xx other than 401/429); otherwise why the attempt failed."""
    if http_status == 401:
        return Failure("unauthorized", "HTTP 401", 401)
    if http_status == 429:
        return Failure("rate_limited", "HTTP 429", 429, retry_after_s)
    if http_status >= 500:
        return Failure("server", f"HTTP {http_status}", http_status, retry_after_s)
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    initial_s: float
    max_s: float
    # No attempt starts with less than this left before the deadline.
    min_attempt_s: float
    rand: Callable[[], float] = field(default=random.random, compare=False)

    @classmethod
    def from_settings(cls, s: SmartPushSettings, rand: Callable[[], float] = random.random) -> RetryPolicy:
        return cls(s.max_attempts, s.backoff_initial_s, s.backoff_max_s, s.min_attempt_s, rand)

    def delay(self, failed_attempts: int, failure: Failure) -> float:
        """Full jitter, uniform in [0, min(max, initial * 2**(n-1))], and never less than Retry-After."""
        delay = float(self.rand()) * min(self.max_s, self.initial_s * (2.0 ** (failed_attempts - 1)))
        return max(delay, failure.retry_after_s) if failure.retry_after_s is not None else delay

    def why_not_retry(self, failed_attempts: int, delay: float, remaining: float | None) -> str | None:
        """None when another attempt may start after `delay`; otherwise why not."""
        if failed_attempts >= self.max_attempts:
            return "attempts exhausted"
        if remaining is not None and delay + self.min_attempt_s > remaining:
            return "no time left before the deadline"
        return None


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
