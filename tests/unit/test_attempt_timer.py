"""AttemptTimer keeps asyncio.timeout's contract: each scenario runs under both, with the same outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from gateway.smartpush.attempt_timer import AttemptTimer

Bound = Callable[[float | None], AbstractAsyncContextManager[Any]]


@asynccontextmanager
async def _attempt_timer(delay: float | None) -> AsyncIterator[AttemptTimer]:
    """How the SmartPush client brackets an attempt (SmartPushClient._bounded)."""
    timer = AttemptTimer.after(delay)
    timer.start()
    try:
        yield timer
    except asyncio.CancelledError as exc:
        if timer.stop(cancelled=True):
            raise TimeoutError from exc
        raise
    finally:
        timer.stop(cancelled=False)


BOUNDS = pytest.mark.parametrize("bound", [asyncio.timeout, _attempt_timer], ids=["asyncio.timeout", "AttemptTimer"])


@BOUNDS
async def test_a_block_that_overruns_ends_in_timeout_error(bound: Bound) -> None:
    async def overrun() -> None:
        async with bound(0.01):
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await overrun()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]  # its own cancel taken back


@BOUNDS
async def test_a_block_that_finishes_in_time_is_untouched(bound: Bound) -> None:
    async with bound(5):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)  # nothing fires later either
    async with bound(None):
        await asyncio.sleep(0.01)


@BOUNDS
async def test_someone_elses_cancel_stays_a_cancel(bound: Bound) -> None:
    async def body() -> None:
        async with bound(5):
            await asyncio.sleep(5)

    task = asyncio.create_task(body())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@BOUNDS
async def test_a_cancel_beside_the_timer_s_is_not_swallowed(bound: Bound) -> None:
    """The deadline and a caller's cancel in the same instant: the caller's cancel wins."""

    async def body() -> None:
        async with bound(0):
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            await asyncio.sleep(5)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(body())


@BOUNDS
async def test_rescheduling_tightens_a_running_bound(bound: Bound) -> None:
    loop = asyncio.get_running_loop()

    async def rescheduled(delay: float | None, when: float) -> None:
        async with bound(delay) as timer:
            assert timer.when() == (None if delay is None else pytest.approx(loop.time() + delay, abs=0.5))
            timer.reschedule(when)
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await rescheduled(None, loop.time() + 0.01)
    with pytest.raises(TimeoutError):
        await rescheduled(5, loop.time() - 1)  # already past: at the next turn of the loop


@BOUNDS
async def test_another_error_after_the_deadline_passes_through(bound: Bound) -> None:
    async def failing() -> None:
        async with bound(0):
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                raise KeyError("the block's own failure") from None

    with pytest.raises(KeyError):
        await failing()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_fired_timer_ignores_a_late_reschedule() -> None:
    """A drain that begins between the timer firing and the block ending must not fail
    (asyncio.Timeout raises RuntimeError there)."""
    timer = AttemptTimer.after(0)
    timer.start()
    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.sleep(5)
        timer.reschedule(asyncio.get_running_loop().time() + 10)
        assert timer.stop(cancelled=True)
    finally:
        timer.stop(cancelled=False)


async def test_a_timer_starts_once_and_reschedules_only_while_running() -> None:
    timer = AttemptTimer.after(1)
    with pytest.raises(RuntimeError, match="only a running"):
        timer.reschedule(None)
    timer.start()
    with pytest.raises(RuntimeError, match="already started"):
        timer.start()
    assert timer.stop(cancelled=False) is False
    assert timer.stop(cancelled=True) is False  # a second stop is a no-op
