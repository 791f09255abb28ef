"""The state store contract, against both real backends: a SQLite file and a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from smartpush.gateway.v1 import errors_pb2

from gateway.clock import SystemClock
from gateway.config import StateSettings
from gateway.state import StateStore, open_store
from gateway.state.store import Busy, Claimed, Replay, StoreUnavailable
from tests.helpers import RedisServer, ShiftClock

FP_A = b"a" * 32
FP_B = b"b" * 32
TOKEN_1 = b"1" * 16
TOKEN_2 = b"2" * 16


def _settings(backend: str, tmp_path: Path, redis: RedisServer | None, prefix: str = "t:") -> StateSettings:
    if backend == "sqlite":
        return StateSettings(backend="sqlite", sqlite_path=tmp_path / "state.sqlite3")
    assert redis is not None
    return StateSettings(backend="redis", redis_url=redis.url, key_prefix=prefix)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "redis"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[tuple[StateStore, StateStore]]:
    """Two stores on the same state, as two processes would have."""
    settings = _settings(request.param, tmp_path, redis_server)
    a, b = open_store(settings, SystemClock()), open_store(settings, SystemClock())
    yield a, b
    await a.close()
    await b.close()


async def test_a_key_is_claimed_once_then_replayed(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    assert await a.claim("k", FP_A, TOKEN_1, 30) == Claimed(TOKEN_1)
    assert await b.claim("k", FP_A, TOKEN_2, 30) == Busy(FP_A)
    await a.complete("k", FP_A, b"answer", 60)
    assert await b.claim("k", FP_B, TOKEN_2, 30) == Replay(FP_A, b"answer")


async def test_concurrent_claims_have_one_winner(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    tokens = [bytes([i]) * 16 for i in range(40)]
    claims = await asyncio.gather(*((a if i % 2 else b).claim("race", FP_A, t, 30) for i, t in enumerate(tokens)))
    assert sum(isinstance(c, Claimed) for c in claims) == 1
    assert all(isinstance(c, Busy | Claimed) for c in claims)


async def test_release_frees_the_key_only_for_its_owner(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    await a.claim("k", FP_A, TOKEN_1, 30)
    await b.release("k", TOKEN_2)  # not the owner: nothing happens
    assert isinstance(await b.claim("k", FP_A, TOKEN_2, 30), Busy)
    await a.release("k", TOKEN_1)
    assert await b.claim("k", FP_B, TOKEN_2, 30) == Claimed(TOKEN_2)
    assert await a.renew("k", TOKEN_1, 30) is False
    assert await b.renew("k", TOKEN_2, 30) is True


async def test_a_lapsed_lease_can_be_claimed_again(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    await a.claim("k", FP_A, TOKEN_1, 0.2)  # its process "died": nobody completes or renews it
    await asyncio.sleep(0.4)
    assert await b.claim("k", FP_A, TOKEN_2, 30) == Claimed(TOKEN_2)


async def test_records_expire(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    await a.claim("k", FP_A, TOKEN_1, 30)
    await a.complete("k", FP_A, b"answer", 0.2)
    await asyncio.sleep(0.4)
    assert await b.claim("k", FP_B, TOKEN_2, 30) == Claimed(TOKEN_2)


async def test_id_blocks_never_overlap(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    firsts = await asyncio.gather(*((a if i % 2 else b).reserve_ids(100, 1_700_000_000_000) for i in range(20)))
    ids = [i for first in firsts for i in range(first, first + 100)]
    assert len(set(ids)) == 2000
    assert min(ids) == 1_700_000_000_000


async def test_values_are_shared(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    assert await b.get("consent", "x") is None
    await a.put("consent", "x", b"v1")
    await a.put("consent", "x", b"v2")
    assert await b.get("consent", "x") == b"v2"
    assert await b.get("other", "x") is None


async def test_state_survives_reopening(tmp_path: Path, redis_server: RedisServer) -> None:
    for backend in ("sqlite", "redis"):
        settings = _settings(backend, tmp_path, redis_server, prefix="reopen:")
        store = open_store(settings, SystemClock())
        await store.put("consent", "x", b"kept")
        await store.claim("k", FP_A, TOKEN_1, 30)
        await store.complete("k", FP_A, b"answer", 60)
        await store.close()
        store = open_store(settings, SystemClock())
        assert await store.get("consent", "x") == b"kept"
        assert await store.claim("k", FP_A, TOKEN_2, 30) == Replay(FP_A, b"answer")
        await store.close()


async def test_redis_down_is_unavailable_and_recovers(redis_server: RedisServer, tmp_path: Path) -> None:
    store = open_store(_settings("redis", tmp_path, redis_server), SystemClock())
    await store.ping()
    await redis_server.stop()
    for call in (store.ping(), store.claim("k", FP_A, TOKEN_1, 30), store.get("consent", "x")):
        with pytest.raises(StoreUnavailable) as caught:
            await call
        assert caught.value.reason == errors_pb2.ERROR_REASON_STATE_STORE_UNAVAILABLE
        assert "redis" in caught.value.message
    await redis_server.start()  # same port, empty
    await store.ping()  # reconnected by itself
    assert await store.claim("k", FP_A, TOKEN_1, 30) == Claimed(TOKEN_1)
    await store.close()


def test_sqlite_path_that_cannot_be_used_stops_startup(tmp_path: Path) -> None:
    from gateway.config import ConfigError

    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError) as caught:
        open_store(StateSettings(sqlite_path=tmp_path / "file" / "state.sqlite3"), SystemClock())
    assert caught.value.setting == "state.sqlite_path"


async def test_redis_over_tls_with_a_password_file(tmp_path: Path) -> None:
    from tests.tls import make_server_certs

    certs = make_server_certs(tmp_path)
    server = RedisServer(password="s3cret-redis-pw", tls=(certs.ca, certs.cert, certs.key))
    await server.start()
    try:
        (tmp_path / "pw").write_text("s3cret-redis-pw\n")
        settings = StateSettings(
            backend="redis",
            redis_url=server.url,  # type: ignore[arg-type]
            redis_password_file=tmp_path / "pw",
            redis_ca_file=certs.ca,
        )
        store = open_store(settings, SystemClock())
        assert await store.claim("k", FP_A, TOKEN_1, 30) == Claimed(TOKEN_1)
        await store.close()
        # Without the CA the server is not trusted; without the password it refuses: both fail closed.
        for wrong in (
            settings.model_copy(update={"redis_ca_file": None}),
            settings.model_copy(update={"redis_password_file": None}),
        ):
            store = open_store(wrong, SystemClock())
            with pytest.raises(StoreUnavailable) as caught:
                await store.ping()
            assert "s3cret" not in caught.value.message
            await store.close()
    finally:
        await server.stop()


async def test_expiring_values_and_bounded_lists(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    await a.put("tokens", "t", b"rq", ttl_s=0.2)
    assert await b.get("tokens", "t") == b"rq"
    await asyncio.sleep(0.4)
    assert await b.get("tokens", "t") is None
    for i in range(8):  # from two "processes" in turn
        await (a if i % 2 else b).append("events", "rq", str(i).encode(), 30, keep=5)
    assert await a.items("events", "rq") == [b"3", b"4", b"5", b"6", b"7"]  # the last five, oldest first
    await asyncio.gather(*(a.append("events", "many", b"x", 30, keep=100) for _ in range(40)))
    assert len(await b.items("events", "many")) == 40  # concurrent appends all land
    assert await b.items("events", "other") == []
    await a.append("events", "short", b"x", 0.2, keep=5)
    await asyncio.sleep(0.4)
    assert await b.items("events", "short") == []


def _open_at_once(path: str, barrier: Any, results: Any) -> None:
    from gateway.state.sqlite_store import SqliteStore

    barrier.wait()
    try:
        SqliteStore(path, SystemClock())
        results.put("ok")
    except Exception as exc:  # what the worker would die of
        results.put(repr(exc))


@pytest.mark.parametrize("made_by", ["nobody", "an earlier release"])
def test_workers_opening_one_sqlite_file_together_all_succeed(tmp_path: Path, made_by: str) -> None:
    # `serve --workers N` starts N processes on one file: switching a new file to WAL can be
    # refused with "database is locked" at once (it used to stop a worker, and so the supervisor);
    # on a file from an earlier release they all try to add the lease column at once.
    # (forkserver: a fork of this process would run the at-fork hooks earlier tests left alive,
    # and OpenTelemetry's can hang the child — see test_entropy.)
    import multiprocessing
    import sqlite3

    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload([__name__])  # (the worker function and its imports, loaded once)

    outcomes = []
    for i in range(15):
        if made_by != "nobody":
            with contextlib.closing(sqlite3.connect(tmp_path / f"s{i}.sqlite3")) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(
                    "CREATE TABLE idempotency (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL NOT NULL)"
                )
                db.commit()
        barrier, results = mp.Barrier(4), mp.Queue()
        procs = [
            mp.Process(target=_open_at_once, args=(str(tmp_path / f"s{i}.sqlite3"), barrier, results)) for _ in range(4)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        outcomes += [results.get(timeout=5) for _ in procs]
    assert set(outcomes) == {"ok"}
    with contextlib.closing(sqlite3.connect(tmp_path / "s0.sqlite3")) as db:
        assert "lease_until" in {row[1] for row in db.execute("PRAGMA table_info(idempotency)")}


async def test_sqlite_drops_expired_rows_as_writes_go_by(tmp_path: Path) -> None:
    import sqlite3

    from gateway.state.sqlite_store import _PURGE_EVERY

    path = tmp_path / "state.sqlite3"
    store = open_store(StateSettings(sqlite_path=path), SystemClock())
    for i in range(3):
        await store.claim(f"k{i}", FP_A, TOKEN_1, 30)
        await store.complete(f"k{i}", FP_A, b"answer", 0.05)
    await store.put("tokens", "t", b"v", ttl_s=0.05)
    await store.append("events", "e", b"v", 0.05, keep=5)
    await asyncio.sleep(0.1)
    for _ in range(_PURGE_EVERY):
        await store.reserve_ids(1, 1)
    await store.close()
    with sqlite3.connect(path) as db:
        counts = [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("idempotency", "expiring", "lists")]  # noqa: S608
    assert counts == [0, 0, 0]  # the file is bounded by the TTLs, not by what was ever written


async def test_sqlite_sweeps_expired_idempotency_rows_in_bounded_rounds(tmp_path: Path) -> None:
    """Without an expiry index, each upkeep looks at the next _SWEEP_ROWS keys in order and drops
    the expired ones: bounded work however large the table, every row reached within a round, and
    one position for every process on the file (each goes on where the last upkeep stopped)."""
    import sqlite3

    from gateway.state.sqlite_store import _PURGE_EVERY, _SWEEP_ROWS

    path = tmp_path / "state.sqlite3"
    store = open_store(StateSettings(sqlite_path=path), SystemClock())
    other = open_store(StateSettings(sqlite_path=path), SystemClock())  # another worker's
    now = time.time()
    expired = [f"e{i:05d}" for i in range(_SWEEP_ROWS + _SWEEP_ROWS // 2)]
    live = ["a-live", "m-live", "z-live"]  # before, among and after the expired keys
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executemany("INSERT INTO idempotency VALUES (?, x'44', ?, NULL)", [(k, now - 1) for k in expired])
        db.executemany("INSERT INTO idempotency VALUES (?, x'44', ?, NULL)", [(k, now + 600) for k in live])
        db.commit()
        indexes = db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'idempotency'")
        assert indexes.fetchall() == []

    def keys() -> list[str]:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return [row[0] for row in db.execute("SELECT key FROM idempotency ORDER BY key")]

    async def upkeep_done(by: Any, before: list[str]) -> list[str]:
        for _ in range(_PURGE_EVERY):
            await by.reserve_ids(1, 1)
        for _ in range(200):  # the upkeep runs on the store's thread
            found = keys()
            if found != before:
                return found
            await asyncio.sleep(0.025)
        return keys()

    try:
        # Round one, first upkeep: the first _SWEEP_ROWS keys ("a-live" and the first expired ones).
        first = await upkeep_done(store, keys())
        assert first == ["a-live", *expired[_SWEEP_ROWS - 1 :], "m-live", "z-live"]
        # A key that expired behind the position waits for the next round...
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("INSERT INTO idempotency VALUES ('b-expired', x'44', ?, NULL)", (now - 1,))
            db.commit()
        # ...while the other process's upkeep goes on from where this one stopped, to the end.
        assert await upkeep_done(other, keys()) == ["a-live", "b-expired", "m-live", "z-live"]
        # The next upkeep starts the next round from the first key.
        assert await upkeep_done(store, keys()) == live
    finally:
        await store.close()
        await other.close()


async def test_sqlite_every_table_is_swept_in_bounded_rounds(tmp_path: Path) -> None:
    """Expired quota counters, values and list items go as idempotency rows do: an upkeep looks at
    _SWEEP_ROWS rows of each table (its work bounded however large they grow — a full scan of each
    grew with them, and writes wait for the upkeep), the next goes on from there, live rows stay."""
    import sqlite3

    from gateway.state.sqlite_store import _PURGE_EVERY, _SWEEP_ROWS

    path = tmp_path / "state.sqlite3"
    store = open_store(StateSettings(sqlite_path=path), SystemClock())
    now = time.time()
    expired = _SWEEP_ROWS + _SWEEP_ROWS // 2
    await store.put("warm", "up", b"v")  # (the schema made)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executemany("INSERT INTO quota VALUES (?, 1, ?)", [(f"q{i:05d}", now - 1) for i in range(expired)])
        db.executemany("INSERT INTO expiring VALUES ('n', ?, x'44', ?)", [(f"e{i}", now - 1) for i in range(expired)])
        db.executemany("INSERT INTO lists (namespace, key, value, expires_at) VALUES ('n', ?, x'44', ?)",
                       [(f"l{i}", now - 1) for i in range(expired)])  # fmt: skip
        for table, row in (("quota", "('z-live', 1, ?)"), ("expiring", "('n', 'live', x'44', ?)")):
            db.execute(f"INSERT INTO {table} VALUES {row}", (now + 600,))  # noqa: S608
        db.execute("INSERT INTO lists (namespace, key, value, expires_at) VALUES ('n', 'live', x'44', ?)", (now + 600,))
        db.commit()

    def counts() -> list[int]:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("quota", "expiring", "lists")]  # noqa: S608

    async def upkeep_done(before: list[int]) -> list[int]:
        for _ in range(_PURGE_EVERY):
            await store.reserve_ids(1, 1)
        for _ in range(200):  # (the sweeps run on the loop, on the thread when the file is locked)
            if (found := counts()) != before:
                return found
            await asyncio.sleep(0.025)
        return counts()

    try:
        first = await upkeep_done(counts())
        assert first == [expired - _SWEEP_ROWS + 1] * 3  # the first _SWEEP_ROWS rows of each looked at
        assert await upkeep_done(first) == [1, 1, 1]  # the rest, to the end: the live rows stay
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _write_lock_held(path: Path, seconds: float) -> AsyncIterator[None]:
    """Another process's writer: holds the file's write lock for `seconds`, then lets go."""
    import sqlite3

    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = asyncio.get_running_loop().call_later(seconds, other.execute, "COMMIT")
    try:
        yield
    finally:
        release.cancel()
        if other.in_transaction:
            other.execute("COMMIT")
        other.close()


async def test_sqlite_calls_run_on_the_loop_and_exactly_charge_a_window(tmp_path: Path) -> None:
    """Uncontended, each call is its own transaction on the loop's connection (none reaches the
    store's thread); a window of 150 admits exactly 150 of 400 concurrent charges."""
    from gateway.state.limits import Limit
    from gateway.state.sqlite_store import SqliteStore

    store = SqliteStore(tmp_path / "state.sqlite3", SystemClock())
    on_thread: list[str] = []
    store._batcher._db.set_trace_callback(lambda sql: on_thread.append(sql) if sql.startswith("BEGIN") else None)
    window = [Limit("project:p:minute", "window", 150, 60.0, "project:p:per_minute", "150 sends per minute")]
    refusals = await asyncio.gather(*(store.take(window) for _ in range(400)))
    assert sum(r is None for r in refusals) == 150
    assert on_thread == []
    await store.close()


async def test_sqlite_a_locked_file_never_blocks_the_loop_and_waiting_calls_commit_together(tmp_path: Path) -> None:
    from gateway.state.limits import Limit
    from gateway.state.sqlite_store import SqliteStore

    path = tmp_path / "state.sqlite3"
    store = SqliteStore(path, SystemClock())
    on_thread: list[str] = []
    store._batcher._db.set_trace_callback(lambda sql: on_thread.append(sql) if sql.startswith("BEGIN") else None)
    window = [Limit("project:p:minute", "window", 150, 60.0, "project:p:per_minute", "150 sends per minute")]
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beating = asyncio.create_task(heartbeat())
    async with _write_lock_held(path, 0.5):
        refusals = await asyncio.gather(*(store.take(window) for _ in range(400)))
    beating.cancel()
    assert ticks >= 25  # the loop ran on while the calls waited for the lock
    assert sum(r is None for r in refusals) == 150  # still exact
    assert 0 < len(on_thread) < 400 / 4, len(on_thread)  # they waited on the thread, batched
    await store.close()


async def test_sqlite_a_lock_held_for_milliseconds_is_waited_out_on_the_loop(tmp_path: Path) -> None:
    """The write lock held briefly elsewhere (another worker's statement, this store's upkeep):
    the calls try again on the loop and none goes to the store's thread. A call on the thread
    holds the lock while it waits for the GIL, so calls that found it locked used to follow it
    there, one after another."""
    from gateway.state.limits import Limit
    from gateway.state.sqlite_store import SqliteStore

    path = tmp_path / "state.sqlite3"
    store = SqliteStore(path, SystemClock())
    on_thread: list[str] = []
    store._batcher._db.set_trace_callback(lambda sql: on_thread.append(sql) if sql.startswith("BEGIN") else None)
    window = [Limit("project:p:minute", "window", 30, 60.0, "project:p:per_minute", "30 sends per minute")]
    async with _write_lock_held(path, 0.01):
        refusals = await asyncio.gather(*(store.take(window) for _ in range(50)))
    assert sum(r is None for r in refusals) == 30  # still exact
    assert on_thread == []
    await store.close()


async def test_sqlite_one_failing_call_in_a_batch_undoes_only_itself(tmp_path: Path) -> None:
    from gateway.state.sqlite_store import SqliteStore

    path = tmp_path / "state.sqlite3"
    store = SqliteStore(path, SystemClock())

    def half_done_then_broken(db: Any) -> None:
        db.execute("INSERT INTO kv VALUES ('n', 'broken', x'00')")
        db.execute("SELECT * FROM no_such_table")

    async with _write_lock_held(path, 0.3):  # so all of them queue on the thread and share a batch
        good = [store.put("n", f"k{i}", b"v") for i in range(50)]
        outcomes = await asyncio.gather(
            *good[:25], store._call(half_done_then_broken), *good[25:], return_exceptions=True
        )
    assert isinstance(outcomes[25], StoreUnavailable)
    assert [o for i, o in enumerate(outcomes) if i != 25] == [None] * 50
    assert await store.get("n", "broken") is None  # its first statement was undone with it
    assert all([await store.get("n", f"k{i}") == b"v" for i in range(50)])
    await store.close()


async def test_a_charge_of_several_sends_counts_them_all(stores: tuple[StateStore, StateStore]) -> None:
    """What a quota lease asks of the store: several sends charged at once, or none of them."""
    from gateway.state.limits import Limit

    a, b = stores
    window = [Limit("project:p:minute", "window", 10, 60.0, "project:p:per_minute", "10 sends per minute")]
    assert await a.take(window, [6]) is None
    assert await b.take(window, [5]) is not None  # 11 > 10: refused, nothing charged
    assert await b.take(window, [4]) is None
    assert await a.take(window) is not None  # all 10 spent
    rate = [Limit("caller:c", "rate", 1.0, 3, "caller:c", "1 send per second, burst 3")]
    assert await a.take(rate, [3]) is None
    assert await b.take(rate, [1]) is not None  # the burst went in one charge


@pytest.mark.parametrize("old_table", ["rowid", "WITHOUT ROWID"])
async def test_sqlite_keys_live_in_one_btree_and_files_made_before_still_serve(tmp_path: Path, old_table: str) -> None:
    """A new file keeps idempotency records WITHOUT ROWID (one b-tree to write per claim or
    record); a file made by an earlier release (a rowid table, or the last release's WITHOUT ROWID
    one; no lease column, its rows' expiry their lease) gets the column and serves the same calls,
    its old rows meaning what they meant."""
    import sqlite3

    from gateway.state.sqlite_store import SqliteStore
    from gateway.state.store import done_record, pending_record

    new = SqliteStore(tmp_path / "new.sqlite3", SystemClock())
    await new.close()
    with (
        contextlib.closing(sqlite3.connect(tmp_path / "new.sqlite3")) as db,
        pytest.raises(sqlite3.OperationalError, match="rowid"),
    ):
        db.execute("SELECT rowid FROM idempotency")
    now = time.time()
    with contextlib.closing(sqlite3.connect(tmp_path / "old.sqlite3")) as db:
        db.execute(
            "CREATE TABLE idempotency (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL NOT NULL)"
            + (" WITHOUT ROWID" if old_table == "WITHOUT ROWID" else "")
        )
        db.execute("CREATE INDEX idempotency_expiry ON idempotency (expires_at)")
        db.executemany(
            "INSERT INTO idempotency VALUES (?, ?, ?)",
            [
                ("held", pending_record(TOKEN_1, FP_A), now + 30),  # a claim within its lease
                ("lapsed", pending_record(TOKEN_1, FP_A), now - 1),  # its owner died
                ("answered", done_record(FP_A, b"old answer"), now + 60),
            ],
        )
        db.commit()
    old = SqliteStore(tmp_path / "old.sqlite3", SystemClock())
    try:
        assert await old.claim("held", FP_A, TOKEN_2, 30, 600) == Busy(FP_A)
        assert await old.claim("lapsed", FP_A, TOKEN_2, 30, 600) == Claimed(TOKEN_2)
        assert await old.claim("answered", FP_A, TOKEN_2, 30, 600) == Replay(FP_A, b"old answer")
        assert isinstance(await old.claim("k", FP_A, TOKEN_1, 30, 600), Claimed)
        assert isinstance(await old.claim("k", FP_A, TOKEN_2, 30, 600), Busy)
        await old.complete("k", FP_A, b"answer", 600)
        assert await old.claim("k", FP_A, TOKEN_2, 30, 600) == Replay(FP_A, b"answer")
    finally:
        await old.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "old.sqlite3")) as db:
        assert "lease_until" in {row[1] for row in db.execute("PRAGMA table_info(idempotency)")}
        # The expiry index is gone: expired rows are swept in key order.
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'idempotency_expiry'").fetchone() is None


def _row(path: Path, key: str) -> tuple[float, float | None]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT expires_at, lease_until FROM idempotency WHERE key = ?", (key,)).fetchone()
    assert row is not None
    return row[0], row[1]


async def test_sqlite_a_new_key_is_claimed_and_answered_in_one_statement_each(tmp_path: Path) -> None:
    """A new key is claimed with one INSERT (a key with a row is decided in a transaction). A
    claim told the TTL gives the row its answer's lifetime at once, so recording the answer
    rewrites the value alone (one statement, no transaction around it, the expiry index not
    written again); a claim not told it gets the answer's TTL counted from the answer."""
    from gateway.state.sqlite_store import SqliteStore

    path = tmp_path / "state.sqlite3"
    clock = ShiftClock()
    store = SqliteStore(path, clock)
    statements: list[str] = []
    assert store._loop_db is not None
    store._loop_db.set_trace_callback(statements.append)
    try:
        t0 = clock.time()
        statements.clear()
        await store.claim("told", FP_A, TOKEN_1, 30, 600)
        assert [s.split()[0] for s in statements] == ["INSERT"]  # a new key: one statement, no BEGIN
        expires, lease = _row(path, "told")
        assert expires == pytest.approx(t0 + 600, abs=1)
        assert lease == pytest.approx(t0 + 30, abs=1)
        clock.offset += 5
        statements.clear()
        await store.complete("told", FP_A, b"answer", 600)
        assert [s.split()[0] for s in statements] == ["UPDATE"]
        assert _row(path, "told") == (expires, None)  # the claim's expiry kept: ttl from the claim

        await store.claim("untold", FP_A, TOKEN_1, 30)
        clock.offset += 5
        await store.complete("untold", FP_A, b"answer", 600)
        expires, lease = _row(path, "untold")
        assert expires == pytest.approx(t0 + 10 + 600, abs=1)
        assert lease is None
        assert await store.claim("untold", FP_B, TOKEN_2, 30) == Replay(FP_A, b"answer")
    finally:
        await store.close()


async def test_sqlite_a_renewed_claim_outlives_a_short_ttl(tmp_path: Path) -> None:
    """The purge drops rows by expiry: a claim renewed past its row's expiry moves the expiry too."""
    from gateway.state.sqlite_store import SqliteStore

    path = tmp_path / "state.sqlite3"
    clock = ShiftClock()
    store = SqliteStore(path, clock)
    try:
        await store.claim("k", FP_A, TOKEN_1, 1, 0.5)
        clock.offset += 0.9
        assert await store.renew("k", TOKEN_1, 10)
        expires, lease = _row(path, "k")
        assert lease is not None
        assert expires >= lease
        clock.offset += 5  # past the first lease and the TTL: the renewed claim still holds
        assert await store.claim("k", FP_A, TOKEN_2, 30) == Busy(FP_A)
    finally:
        await store.close()


async def test_sqlite_an_answer_recorded_while_another_process_writes_waits_on_the_thread(tmp_path: Path) -> None:
    from gateway.state.sqlite_store import SqliteStore

    path = tmp_path / "state.sqlite3"
    store = SqliteStore(path, SystemClock())
    try:
        await store.claim("k", FP_A, TOKEN_1, 30, 600)
        async with _write_lock_held(path, 0.3):
            await store.complete("k", FP_A, b"answer", 600)  # "locked" on the loop: done on the thread
        assert await store.claim("k", FP_B, TOKEN_2, 30) == Replay(FP_A, b"answer")
    finally:
        await store.close()


async def test_sqlite_page_caches_are_bounded_on_both_connections(tmp_path: Path) -> None:
    from gateway.state.sqlite_store import _CACHE_KIB, SqliteStore

    store = SqliteStore(tmp_path / "state.sqlite3", SystemClock())
    try:
        assert store._loop_db is not None
        for db in (store._batcher._db, store._loop_db):
            assert db.execute("PRAGMA cache_size").fetchone() == (-_CACHE_KIB,)
        assert _CACHE_KIB < 2000  # below SQLite's default: the RSS budget (docs/performance.md)
    finally:
        await store.close()


def _size(path: Path) -> int:
    return path.stat().st_size


async def test_sqlite_the_wal_starts_over_under_continuous_writes(tmp_path: Path) -> None:
    """Writes back to back from many tasks (the loop never idle): the upkeep's checkpoint has the
    WAL start over, so its file stays within a few times the size it is cut back to. Before, the automatic
    checkpoints copied frames but a write was always under way, and the WAL grew by every write
    (~100 MB here; 5.6 GB after 6 minutes of keyed load)."""
    import sqlite3

    from gateway.state.sqlite_store import _WAL_KEEP_BYTES, SqliteStore

    path = tmp_path / "state.sqlite3"
    wal = Path(f"{path}-wal")
    store = SqliteStore(path, SystemClock())
    sizes: list[int] = []

    async def sender(task: int) -> None:
        for i in range(1000):
            key = f"k{task}-{i}"
            await store.claim(key, FP_A, TOKEN_1, 30, 600)
            await store.complete(key, FP_A, b"answer" * 20, 600)
            if task == 0 and i % 50 == 0:
                sizes.append(_size(wal))

    try:
        await asyncio.gather(*(sender(t) for t in range(8)))  # 16,000 writes, 32 upkeeps
        sizes.append(_size(wal))
        assert await store.claim("k7-999", FP_B, TOKEN_2, 30) == Replay(FP_A, b"answer" * 20)
    finally:
        await store.close()
    # Between two restarts the WAL holds what was written meanwhile: ~500 writes' frames, more when
    # this machine is busy and the checkpoint waits its turn — bounded, not growing with the writes.
    assert max(sizes) <= 4 * _WAL_KEEP_BYTES, sizes
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM idempotency").fetchone() == (8000,)  # nothing lost


class _CountedHolds(asyncio.Event):
    """The store's write gate, counting the times the WAL's restart held this process's writes."""

    def __init__(self) -> None:
        super().__init__()
        self.set()
        self.holds = 0

    def clear(self) -> None:
        self.holds += 1
        super().clear()


async def test_sqlite_a_reader_holding_the_wal_delays_its_restart_and_rarely_holds_writes(tmp_path: Path) -> None:
    """Another process reading all along (a backup, say): the checkpoint cannot have the WAL start
    over, writes go on, and after a hold of the writes that did not help the next upkeeps hold
    them less and less often (1, 2, 4 … let pass): 3 holds in 8 upkeeps, not 8 of ~100 ms each.
    Once the reader is done, a later upkeep restarts the WAL."""
    import sqlite3

    from gateway.state.sqlite_store import _PURGE_EVERY, _WAL_KEEP_BYTES, SqliteStore

    path = tmp_path / "state.sqlite3"
    wal = Path(f"{path}-wal")
    store = SqliteStore(path, SystemClock())
    gate = store._may_write = _CountedHolds()

    async def writes(count: int) -> None:
        for i in range(count):
            await store.put("n", f"k{i % 100}", b"v" * 3000)
            await asyncio.sleep(0)  # (a loop with other work: the store's thread gets its turns)

    async def upkeep_done() -> None:
        await writes(_PURGE_EVERY)
        await asyncio.sleep(0.3)  # (the checkpoint, on the store's thread, and a hold's ~100 ms)

    try:
        await writes(10)
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM kv").fetchone()  # a snapshot: the WAL is in use
            for _ in range(8):
                await upkeep_done()
            held = _size(wal)
            reader.execute("COMMIT")
        assert held > _WAL_KEEP_BYTES  # (~4 frames per write: the WAL could not start over)
        assert gate.holds == 3  # upkeeps 1, 3 and 6 (1, then 2, then 4 let pass after each)
        for _ in range(20):  # (the checkpoint runs on the store's thread: a later write cuts it back)
            await writes(_PURGE_EVERY // 5)
            if _size(wal) <= _WAL_KEEP_BYTES:
                break
            await asyncio.sleep(0.05)
        assert _size(wal) <= _WAL_KEEP_BYTES  # started over and cut back
    finally:
        await store.close()


async def test_sqlite_a_closed_store_is_unavailable_even_when_its_upkeep_is_due(tmp_path: Path) -> None:
    from gateway.state.sqlite_store import _PURGE_EVERY, SqliteStore

    store = SqliteStore(tmp_path / "state.sqlite3", SystemClock())
    for _ in range(_PURGE_EVERY - 1):
        await store.reserve_ids(1, 1)
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.reserve_ids(1, 1)  # the 500th write: its upkeep finds the store closed too
