"""`asyncio.timeout`'s contract for one SmartPush attempt, at a fraction of its cost.

Python 3.11's `asyncio.Timeout` is interpreted and keeps its state in an `Enum`: one use reads
that state nine times, each through `EnumType`'s attribute hook (~700 instructions apiece), ~15 k
instructions per send with its Python around them (callgrind). This is the same protocol — the
task cancelled at the deadline; the cancellation turned into `TimeoutError` only when it was this
timer's and no one else's (`Task.uncancel`) — with int states, compiled. No coroutine here: the
caller brackets its block with `start()` and `stop()`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

_CREATED: Final = 0
_RUNNING: Final = 1
_EXPIRING: Final = 2  # fired: the task was cancelled, `stop` has not run yet
_DONE: Final = 3


class AttemptTimer:
    """Cancels the current task at loop time `when` (None: never, unless rescheduled)."""

    def __init__(self, when: float | None) -> None:
        self._when = when
        self._state = _CREATED
        self._handle: asyncio.Handle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0

    @staticmethod
    def after(delay: float | None) -> AttemptTimer:
        """A timer `delay` seconds from now, as `asyncio.timeout(delay)`."""
        return AttemptTimer(None if delay is None else asyncio.get_running_loop().time() + delay)

    def when(self) -> float | None:
        return self._when

    def start(self) -> None:
        if self._state != _CREATED:
            raise RuntimeError("this attempt timer was already started")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("an attempt timer runs inside a task")
        self._state = _RUNNING
        self._task = task
        self._cancelling = task.cancelling()
        self.reschedule(self._when)

    def reschedule(self, when: float | None) -> None:
        """Move the deadline (a drain tightens it). A timer that has fired keeps its verdict
        (asyncio's raises here: a drain beginning in that instant would fail)."""
        if self._state == _EXPIRING:
            return
        if self._state != _RUNNING:
            raise RuntimeError("only a running attempt timer can be rescheduled")
        self._when = when
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if when is not None:
            loop = asyncio.get_running_loop()
            self._handle = loop.call_soon(self._fire) if when <= loop.time() else loop.call_at(when, self._fire)

    def _fire(self) -> None:
        assert self._task is not None
        self._task.cancel()
        self._state = _EXPIRING

    def stop(self, cancelled: bool) -> bool:
        """End the timer (again: a no-op). True when the block ends in a `CancelledError`
        (`cancelled`) that was this timer's alone: the caller raises `TimeoutError` instead."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._state == _EXPIRING:
            self._state = _DONE
            assert self._task is not None
            return self._task.uncancel() <= self._cancelling and cancelled
        if self._state == _RUNNING:
            self._state = _DONE
        return False
