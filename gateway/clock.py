"""Time as a collaborator, so token expiry and deadlines are testable without sleeping."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (token `expires_at` is wall time)."""

    def monotonic(self) -> float:
        """Monotonic seconds, for deadlines and backoff."""

    async def sleep(self, seconds: float) -> None:
        """Wait; a fake clock may advance instead."""


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
