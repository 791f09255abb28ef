"""Quotas over a real SQLite store: per-user windows count each user apart, overall windows count
everyone, and the limits built per (caller, profile, project) stay bounded in memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth.callers import Caller
from gateway.clock import SystemClock
from gateway.config import CallerSettings, QuotaSettings, WindowLimits
from gateway.errors import GatewayError
from gateway.quotas import _CACHED, Quotas
from gateway.state.sqlite_store import SqliteStore


async def test_user_windows_count_each_user_and_overall_windows_everyone(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3", SystemClock())
    quotas = Quotas(QuotaSettings(projects={"*": WindowLimits(per_minute=3, per_user_per_minute=1)}), store)
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
    quotas = Quotas(QuotaSettings(projects={"*": WindowLimits(per_minute=10)}), store)
    caller = Caller("billing", CallerSettings(match="billing"))
    for i in range(_CACHED + 100):
        await quotas.charge(caller, "default", f"project-{i}", "u")
    assert len(quotas._fixed) == _CACHED
    await store.close()
