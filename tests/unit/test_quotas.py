"""Quotas over a real SQLite store: per-user windows count each user apart, overall windows count
everyone, and the limits built per (caller, profile, project) stay bounded in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.auth.callers import Caller
from gateway.clock import Clock, SystemClock
from gateway.config import CallerSettings, QuotaSettings, StateSettings, WindowLimits
from gateway.errors import GatewayError
from gateway.quota_leases import MAX_LEASE
from gateway.quotas import _CACHED, Quotas
from gateway.state import open_store
from gateway.state.sqlite_store import SqliteStore
from tests.helpers import RedisServer


async def test_user_windows_count_each_user_and_overall_windows_everyone(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3", SystemClock())
    quotas = Quotas(
        QuotaSettings(projects={"*": WindowLimits(per_minute=3, per_user_per_minute=1)}), store, SystemClock()
    )
    caller = Caller("billing", CallerSettings(match="billing"))
    await quotas.charge(caller, "default", "p", "alice")
    with pytest.raises(GatewayError) as refused:
        await quotas.charge(caller, "default", "p", "alice")
    assert refused.value.metadata["quota"] == "project:p:per_user_per_minute"
    await quotas.charge(caller, "default", "p", "bob")
    await quotas.charge(caller, "default", "p", "carol")
    with pytest.raises(GatewayError) as refused:
        await quotas.charge(caller, "default", "p", "dave")
    assert refused.value.metadata["quota"] == "project:p:per_minute"
    await quotas.charge(caller, "default", "other-project", "dave")  # `*`: each project apart
    await store.close()


async def test_the_limits_kept_built_are_bounded(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3", SystemClock())
    quotas = Quotas(QuotaSettings(projects={"*": WindowLimits(per_minute=10)}), store, SystemClock())
    caller = Caller("billing", CallerSettings(match="billing"))
    for i in range(_CACHED + 100):
        await quotas.charge(caller, "default", f"project-{i}", "u")
    assert len(quotas._fixed) == _CACHED
    await store.close()


class _Clock:
    """Wall time that moves only when told (the store and the leases read the same one); a Clock of
    its own, not a SystemClock subclass: the shipped build's SystemClock is compiled (mypyc), and
    an interpreted class cannot inherit from a compiled one."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._system = SystemClock()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self._system.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._system.sleep(seconds)


class _Counting:
    """A real store, counting the charges that reach it."""

    def __init__(self, store: SqliteStore) -> None:
        self.store, self.takes = store, 0

    async def take(self, limits: Any, counts: Any = None) -> Any:
        self.takes += 1
        return await self.store.take(limits, counts)


def _quotas(store: Any, clock: Clock, per_minute: int, share: float) -> Quotas:
    settings = QuotaSettings(projects={"*": WindowLimits(per_minute=per_minute)}, lease_share=share)
    return Quotas(settings, store, clock)


async def _admitted(quotas: Quotas, sends: int) -> int:
    caller = Caller("billing", CallerSettings(match="billing"))
    outcomes = await asyncio.gather(
        *(quotas.charge(caller, "default", "p", f"u{i}") for i in range(sends)), return_exceptions=True
    )
    assert all(o is None or isinstance(o, GatewayError) for o in outcomes)
    return sum(o is None for o in outcomes)


async def test_leases_charge_a_large_budget_a_lease_at_a_time(tmp_path: Path) -> None:
    clock = _Clock(6_000_030.0)
    store = _Counting(SqliteStore(tmp_path / "state.sqlite3", clock))
    quotas = _quotas(store, clock, per_minute=100_000, share=0.01)  # a lease: min(1,000, MAX_LEASE)
    caller = Caller("billing", CallerSettings(match="billing"))
    for _ in range(10 * MAX_LEASE):
        await quotas.charge(caller, "default", "p", "u")
    assert store.takes == 10
    assert await _window_count(store.store, clock) == 10 * MAX_LEASE  # every unit charged, none spent twice
    exact = _Counting(store.store)
    per_send = _quotas(exact, clock, per_minute=100_000, share=0)
    for _ in range(20):
        await per_send.charge(caller, "default", "p", "u")
    assert exact.takes == 20  # lease_share 0: every send in the store
    await store.store.close()


async def _window_count(store: SqliteStore, clock: _Clock) -> float:
    index = int(clock.now // 60)
    value = await store._call(
        lambda db: db.execute("SELECT value FROM quota WHERE key = ?", (f"project:p:minute:{index}",)).fetchone()
    )
    return float(value[0])


async def test_leases_over_redis_strand_at_most_a_lease_per_process(redis_server: RedisServer) -> None:
    """Two replicas on one Redis, 800 sends at once each against a budget of 1,000 with leases of
    50: sends that lack a lease while one is being taken wait for it rather than each taking one
    (which stranded units in leases no send was left to spend: 20 admitted of 1,000)."""
    settings = StateSettings(backend="redis", redis_url=redis_server.url, key_prefix="q:")  # type: ignore[arg-type]
    a, b = open_store(settings, SystemClock()), open_store(settings, SystemClock())
    per_hour = QuotaSettings(projects={"*": WindowLimits(per_hour=1000)}, lease_share=0.05)
    qa, qb = Quotas(per_hour, a, SystemClock()), Quotas(per_hour, b, SystemClock())
    admitted = sum(await asyncio.gather(_admitted(qa, 800), _admitted(qb, 800)))
    assert 1000 - 2 * 49 <= admitted <= 1000
    await a.close()
    await b.close()


async def test_leases_never_let_two_processes_past_a_budget(tmp_path: Path) -> None:
    """Two processes (two stores on one file) with leases of 50 against a window of 1,000: never
    more than 1,000 sends, and no more lost than a lease per process."""
    clock = _Clock(6_000_030.0)
    path = tmp_path / "state.sqlite3"
    a, b = SqliteStore(path, clock), SqliteStore(path, clock)
    qa, qb = _quotas(a, clock, 1000, 0.05), _quotas(b, clock, 1000, 0.05)
    admitted = sum(await asyncio.gather(_admitted(qa, 800), _admitted(qb, 800)))
    assert 1000 - 2 * 49 <= admitted <= 1000
    # Nearly spent, the budget went send by send: the sends refused were refused by the store.
    assert await _window_count(a, clock) <= 1000
    await a.close()
    await b.close()


async def test_a_lease_ends_with_its_window(tmp_path: Path) -> None:
    clock = _Clock(6_000_059.5)  # half a second before a minute window's end
    store = _Counting(SqliteStore(tmp_path / "state.sqlite3", clock))
    quotas = _quotas(store, clock, per_minute=100_000, share=0.01)
    caller = Caller("billing", CallerSettings(match="billing"))
    await quotas.charge(caller, "default", "p", "u")
    await quotas.charge(caller, "default", "p", "u")
    assert store.takes == 1  # the second send spent the lease
    clock.now += 0.6  # the next window: the rest of the lease belonged to the last one
    await quotas.charge(caller, "default", "p", "u")
    assert store.takes == 2
    clock.now += 2.0  # within the window, past lease_s (1 s)
    await quotas.charge(caller, "default", "p", "u")
    assert store.takes == 3
    await store.store.close()


@pytest.mark.parametrize("project", ["p", "odd\0project:user:x"])
async def test_per_user_limits_keep_the_keys_and_texts_earlier_releases_wrote(tmp_path: Path, project: str) -> None:
    """Per-user windows are built once and only the user's hash is put in per send: the keys
    (counters already in a store) and the refusal texts are those built from scratch."""
    import hashlib

    from gateway.quotas import _windows

    limits = WindowLimits(per_minute=9, per_user_per_minute=1, per_user_per_hour=5, per_user_per_day=20)
    store = SqliteStore(tmp_path / "state.sqlite3", SystemClock())
    quotas = Quotas(QuotaSettings(profiles={"default": limits}, projects={"*": limits}), store, SystemClock())
    caller = Caller("billing", CallerSettings(match="billing"))
    for sub in ("alice", "bob"):
        user = hashlib.sha256(f"{project}\0{sub}".encode()).hexdigest()[:32]
        expected = [*_windows("profile:default", limits), *_windows(f"project:{project}", limits)]
        expected += [*_windows("profile:default", limits, user), *_windows(f"project:{project}", limits, user)]
        assert quotas.limits(caller, "default", project, sub) == expected
    await store.close()
