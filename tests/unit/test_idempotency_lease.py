"""A claim outlives its lease while its send runs (renewed), and lapses when nobody renews it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from smartpush.gateway.v1 import push_service_pb2

from gateway.clock import SystemClock
from gateway.idempotency import Idempotency
from gateway.send_keys import send_key
from gateway.state.sqlite_store import SqliteStore
from gateway.state.store import Busy, Claimed, Replay

LEASE_S = 0.3
FP = b"f" * 32


async def test_a_running_send_keeps_its_claim_past_the_lease(tmp_path: Path) -> None:
    # Two processes' views of one store file.
    ours, theirs = (SqliteStore(tmp_path / "state.sqlite3", SystemClock()) for _ in range(2))
    idempotency = Idempotency(ours, SystemClock(), ttl_s=60, lease_s=LEASE_S)
    stored = send_key("caller\0profile\0project\0k").store_key
    assert stored is not None

    async def slow_send() -> push_service_pb2.SendResponse:
        await asyncio.sleep(4 * LEASE_S)
        return push_service_pb2.SendResponse(rq_uid="r")

    sending = asyncio.create_task(idempotency.run(stored, FP, None, slow_send))
    seen = []
    for _ in range(6):  # across four leases: always someone else's claim, never free
        await asyncio.sleep(LEASE_S / 2)
        seen.append(type(await theirs.claim(stored, FP, b"t" * 16, LEASE_S)))
    assert Claimed not in seen
    assert Busy in seen
    assert (await sending).rq_uid == "r"
    assert isinstance(await theirs.claim(stored, FP, b"t" * 16, LEASE_S), Replay)
    await ours.close()
    await theirs.close()


async def test_an_unrenewed_claim_lapses_with_its_lease(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3", SystemClock())
    assert isinstance(await store.claim("k", FP, b"a" * 16, LEASE_S), Claimed)
    assert isinstance(await store.claim("k", FP, b"b" * 16, LEASE_S), Busy)
    await asyncio.sleep(LEASE_S * 1.5)
    assert isinstance(await store.claim("k", FP, b"b" * 16, LEASE_S), Claimed)
    await store.close()
