"""The embedded state store: one SQLite file shared by every worker of a host (WAL).

Every call is one transaction, IMMEDIATE for writes (the write lock taken before the first read,
which keeps every read-then-write — a claim, a quota charge — atomic across processes).

Where it runs: first on the event loop itself, on a connection that never waits (busy timeout
0) and never checkpoints — a WAL commit with `synchronous=NORMAL` is a write to the page cache,
tens of microseconds, with no fsync. Handing each call to a thread and back measured ~300 µs of
the event loop's CPU per call (wake-ups, GIL hand-offs: bench/profile.py), more than the SQL.
When another connection holds the write lock (another worker, or this store's own thread), the
call tries again on the loop a few times over ~30 ms (the lock is usually held for microseconds by
a worker, a few milliseconds by the upkeep), and only then goes to the store's thread, which waits
for the lock there so the loop never blocks. Sent to the thread at once, calls used to cascade: a
call on the thread holds the write lock while it waits for the GIL (the loop is busy), so calls
that found it locked meanwhile followed it there — ~80 per upkeep under keyed load.
Calls queued on the thread run together (group commit): one transaction per batch, each call in
its own savepoint so a failing one undoes only itself, one wake-up of the loop for every result.
Every few hundred writes comes the upkeep: expired rows of every table dropped in bounded sweeps
(so the file stays bounded by the TTLs), on the loop, ~1 ms; then, on the thread, the WAL
checkpointed and started over (the thread's `_restart_wal`). Without the restart the WAL grew
without bound under continuous writes (5.6 GB after 6 minutes of keyed load, its wal-index mapped
into the process's memory): a checkpoint copies frames into the database, but the WAL starts over
only when a writer begins with every frame copied and nobody reading it, and another write was
always under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gateway.clock import Clock
from gateway.state.limits import Limit, Refused, decide, quota_keys
from gateway.state.store import (
    Claim,
    Claimed,
    Replay,
    StoreUnavailable,
    done_record,
    owned_by,
    parse_record,
    pending_record,
)

T = TypeVar("T")
log = logging.getLogger(__name__)
_PURGE_EVERY = 500  # writes between two upkeep runs (expired rows dropped, WAL checkpointed)
_MAX_BATCH = 256  # calls per transaction: bounds how long one batch holds the write lock
# A call's waits before each try on the loop: none, then a locked call's before it goes to the thread.
_TRIES_ON_LOOP_S = (0.0, 0.001, 0.002, 0.004, 0.008, 0.016)
# Page cache per connection, in KiB (SQLite's default is 2,000). A send touches the pages it
# writes and one random key's leaf: a larger cache mostly keeps pages the OS caches anyway, and
# counts against the process's RSS budget (two connections: ~3 MB less under keyed load).
_CACHE_KIB = 512
# A WAL that starts over is cut back to this size (between upkeeps it holds ~500 writes' frames,
# ~3 MB for keyed sends). Bounds the disk and the wal-index mapped into every process on the file.
_WAL_KEEP_BYTES = 8 * 1024 * 1024
# How long the upkeep's RESTART checkpoint waits for other connections' readers and writers (new
# writers are held off meanwhile). One that gives up leaves the WAL as it is; the next upkeep tries.
_RESTART_WAIT_MS = 100
_RESTART_TRY_MS = 5  # ...and how long it first tries without holding this process's writers
_MAX_HOLDS_SKIPPED = 64  # upkeeps let pass at most without a hold, after holds that did not help
# Rows of each table looked at per upkeep, in the order of the column named here, from where the
# last upkeep of any process on the file stopped (one position per table, kept in the file). No
# table has an expiry index: every write to it would write the index too (idempotency and quota
# rows are written by every send). Each upkeep follows _PURGE_EVERY writes of its process, so at
# most that many new rows: looking at four times as many goes round a table faster than rows are
# added, however many processes share it, and an expired row waits at most one round — a table
# holds at most ~4/3 of its live rows (docs/performance.md). The upkeep's work is bounded however
# large the tables grow (a full scan of each, as before for all but idempotency, grew with them,
# and writes wait for the upkeep).
_SWEPT_BY = {"idempotency": "key", "quota": "key", "expiring": "rowid", "lists": "seq"}
_SWEEP_ROWS = 4 * _PURGE_EVERY
_SCHEMA = (
    # WITHOUT ROWID (tables below too): one b-tree keyed by the key, not a table plus the key's
    # index, so a claim or a record writes one page fewer to the WAL. A file made before keeps
    # its rowid table: the same statements serve both.
    # expires_at: when the row may be dropped; lease_until: while a pending claim holds (NULL once
    # answered, and in rows written before the column existed, whose expires_at was the lease).
    "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL NOT NULL, "
    "lease_until REAL) WITHOUT ROWID",
    # No expiry index on idempotency: keyed sends write a row each and rewrite it once, and the
    # index was a WAL frame of every claim (~1.4 of 4.6 frames per keyed send). Expired rows are
    # swept in key order instead (_sweep); files from earlier releases lose the index.
    "DROP INDEX IF EXISTS idempotency_expiry",
    "CREATE TABLE IF NOT EXISTS kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
    "PRIMARY KEY (namespace, key))",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quota (key TEXT PRIMARY KEY, value REAL NOT NULL, expires_at REAL NOT NULL) "
    "WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS expiring (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
    "expires_at REAL NOT NULL, PRIMARY KEY (namespace, key))",
    "CREATE TABLE IF NOT EXISTS lists (seq INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, "
    "key TEXT NOT NULL, value BLOB NOT NULL, expires_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS lists_key ON lists (namespace, key, seq)",
)


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _set_up(db: sqlite3.Connection, within_s: float) -> None:
    """WAL and the schema. Workers of one host start together on one new file: switching it to WAL
    can answer "database is locked" at once (no busy wait for that), so a locked file is retried."""
    give_up = time.monotonic() + within_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
            db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            db.execute(f"PRAGMA journal_size_limit={_WAL_KEEP_BYTES}")
            for statement in _SCHEMA:
                db.execute(statement)
            _add_lease_column(db)
            return
        except sqlite3.OperationalError as exc:
            if not _locked(exc) or time.monotonic() > give_up:
                raise
            time.sleep(0.02)


def _sweep(db: sqlite3.Connection, table: str, now: float) -> None:
    """Drops the expired rows among the next _SWEEP_ROWS after the table's sweep position and moves
    it on (back to the start once the last row was passed: round again). The rows are read and
    rewritten in the order they are stored, page by page. Runs inside the upkeep's write
    transaction: processes sharing the file take turns at one position per table."""
    column = _SWEPT_BY[table]
    place = ("sqlite-store", f"{table}-swept-to")  # in kv: (namespace, key)
    row = db.execute("SELECT value FROM kv WHERE namespace = ? AND key = ?", place).fetchone()
    text = bytes(row[0]).decode() if row is not None else ""
    # (an integer column compares below every text in SQLite: its position must be a number)
    after: str | int = text if column == "key" else int(text or 0)
    # The last row of this sweep by OFFSET, not by count(*) and max() over a LIMIT: the same rows
    # stepped over, without an aggregate's work on each (a third of the CPU: 216 against 649 µs
    # for 2,000 idempotency keys).
    last = db.execute(
        f"SELECT {column} FROM {table} WHERE {column} > ? ORDER BY {column} LIMIT 1 OFFSET ?",  # noqa: S608
        (after, _SWEEP_ROWS - 1),
    ).fetchone()
    if last is None:  # fewer rows than that left: to the end of the table, and round again
        db.execute(f"DELETE FROM {table} WHERE {column} > ? AND expires_at <= ?", (after, now))  # noqa: S608
    else:
        db.execute(
            f"DELETE FROM {table} WHERE {column} > ? AND {column} <= ? AND expires_at <= ?",  # noqa: S608
            (after, last[0], now),
        )
    following = "" if last is None else str(last[0])
    db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (*place, following.encode()))


def file_sizes(path: Path) -> dict[str, int]:
    """Bytes on disk of a store's files, by name (`database`, `wal`; one not there is left out).
    Plain `stat` calls: safe from any thread, and for a file another process holds open."""
    sizes = {}
    for name, file in (("database", path), ("wal", Path(f"{path}-wal"))):
        with contextlib.suppress(FileNotFoundError):  # (no WAL between a clean close and the next write)
            sizes[name] = file.stat().st_size
    return sizes


def _add_lease_column(db: sqlite3.Connection) -> None:
    """Files made before `lease_until` existed get it (NULL in their rows: the old meaning holds)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(idempotency)")}
    if "lease_until" in columns:
        return
    try:
        db.execute("ALTER TABLE idempotency ADD COLUMN lease_until REAL")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):  # another worker added it first
            raise


_Op = tuple[Callable[[sqlite3.Connection], Any], bool, asyncio.Future[Any]]
_Writers = tuple[Callable[[], None], Callable[[], None]]  # (hold, release) a loop's writes; called on the thread


class _Batcher:
    """The thread that owns the connection and runs queued calls in batches."""

    def __init__(self, db: sqlite3.Connection, busy_timeout_ms: int) -> None:
        self._db = db
        self._busy_timeout_ms = busy_timeout_ms
        self._queue: deque[_Op] = deque()
        self._ready = threading.Condition()
        self._closing = False
        self._restart_for: list[_Writers] = []
        self._holds_to_skip = 0  # upkeeps whose RESTART does not hold writers after one that did in vain
        self._holds_skipped = 0
        # (not `_thread`: compiled, an attribute becomes a C struct field named after it, `__thread`
        # is a C keyword)
        self._worker = threading.Thread(target=self._serve, name="sqlite-store", daemon=True)
        self._worker.start()

    def submit(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._ready:
            if self._closing:
                raise sqlite3.ProgrammingError("the store is closed")
            self._queue.append((fn, write, future))
            if len(self._queue) == 1:
                self._ready.notify()
        return future

    def restart_wal(self, writers: _Writers) -> None:
        """The WAL checkpointed and started over after the calls queued before have run (outside
        any transaction, so not as one of them), `writers` held for the last step only."""
        with self._ready:
            if self._closing:
                raise sqlite3.ProgrammingError("the store is closed")
            self._restart_for.append(writers)
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._worker.join()
        self._db.close()

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._restart_for and not self._closing:
                    self._ready.wait()
                if not self._queue and not self._restart_for:
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), _MAX_BATCH))]
                restart_for, self._restart_for = self._restart_for, []
            if batch:
                self._run(batch)
            if restart_for:
                self._restart_wal(restart_for)

    def _restart_wal(self, held: list[_Writers]) -> None:
        """A PASSIVE checkpoint (writers go on: it copies most frames and syncs the file), then a
        RESTART: it copies the frames written meanwhile and waits until no reader uses the WAL, so
        the next writer starts it over from its beginning and cuts the file back. RESTART needs the
        write lock, which it usually gets at once, between two writes; where it does not (a loop
        writing back to back: SQLite's busy wait polls, and loses), the loops' writers are held
        while it tries again. Holding them each time cost more: ~6 ms per upkeep, most of it the
        thread waiting for the GIL to let them go again. Where holding them did not help either
        (another process reads for long, a backup say), the next upkeeps do not hold them: 1, 2, 4
        … up to 64 upkeeps are let pass first, so a long reader costs the writes a hold now and
        then, not one per upkeep."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            if self._restart(_RESTART_TRY_MS):
                return
            if self._holds_skipped < self._holds_to_skip:
                self._holds_skipped += 1
                return
            for hold, _ in held:
                hold()  # (from when the loop gets to it: RESTART's busy wait covers the moment)
            try:
                restarted = self._restart(_RESTART_WAIT_MS)
            finally:
                for _, release in held:
                    release()
        except sqlite3.Error:
            log.warning("could not checkpoint the state store's WAL", exc_info=True)
            return
        self._holds_skipped = 0
        if restarted:
            self._holds_to_skip = 0
        else:
            self._holds_to_skip = min(max(1, 2 * self._holds_to_skip), _MAX_HOLDS_SKIPPED)
            log.debug("the state store's WAL is in use by another process: it starts over at a later upkeep")

    def _restart(self, wait_ms: int) -> bool:
        """A RESTART checkpoint that waits `wait_ms` at most for the locks it needs; True if done."""
        db = self._db
        db.execute(f"PRAGMA busy_timeout={wait_ms}")
        try:
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        finally:
            db.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        return not busy

    def _run(self, batch: list[_Op]) -> None:
        db = self._db
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        write = any(op[1] for op in batch)
        try:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            for fn, _, future in batch:
                db.execute("SAVEPOINT call")
                try:
                    result = fn(db)
                except Exception as exc:  # this call's own failure: undo it, keep the batch
                    db.execute("ROLLBACK TO call")
                    db.execute("RELEASE call")
                    outcomes.append((future, None, exc))
                    continue
                db.execute("RELEASE call")
                outcomes.append((future, result, None))
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:  # the transaction itself failed: every call fails
            if db.in_transaction:
                db.execute("ROLLBACK")
            outcomes = [(future, None, exc) for _, _, future in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
        for loop, done in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_deliver, done)


def _deliver(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class _Locked(Exception):
    """Another connection holds the write lock: the call goes to the store's thread."""


def _direct(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], write: bool, autocommit: bool = False) -> T:
    """`fn` in one transaction on the loop's connection; "locked" (timeout 0) raises _Locked.
    `autocommit`: each of `fn`'s statements is atomic and correct alone, so no BEGIN and COMMIT
    (two statements fewer)."""
    try:
        if not autocommit:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        result = fn(db)
        if not autocommit:
            db.execute("COMMIT")
    except BaseException as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError) and _locked(exc):
            raise _Locked from exc
        raise
    return result


class SqliteStore:
    backend = "sqlite"

    def __init__(self, path: Path | str, clock: Clock, busy_timeout_s: float = 5.0) -> None:
        """Opens (and creates) the file now, so a path that cannot be used stops start-up."""
        memory = str(path) == ":memory:"
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._path = None if memory else Path(path)
        self._clock = clock
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=busy_timeout_s)
        _set_up(db, busy_timeout_s)
        self._batcher = _Batcher(db, round(busy_timeout_s * 1000))
        self._loop_db: sqlite3.Connection | None = None
        if not memory:  # (":memory:" would be a second, separate database: the thread alone serves it)
            loop_db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=0)
            loop_db.execute("PRAGMA synchronous=NORMAL")
            loop_db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            loop_db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints (fsync) run on the thread
            loop_db.execute(f"PRAGMA journal_size_limit={_WAL_KEEP_BYTES}")  # a WAL it starts over is cut back
            self._loop_db = loop_db
        self._writes = 0
        self._may_write = asyncio.Event()  # cleared while the WAL's restart holds writes (_Batcher._restart_wal)
        self._may_write.set()

    async def _call(self, fn: Callable[[sqlite3.Connection], T], write: bool = True, autocommit: bool = False) -> T:
        try:
            if write:
                if not self._may_write.is_set():
                    await self._may_write.wait()
                self._writes += 1
                if self._writes % _PURGE_EVERY == 0:
                    self._upkeep()  # (inside: a store closed meanwhile is unavailable, as for the call)
            if self._loop_db is not None:
                for wait in _TRIES_ON_LOOP_S:  # (a locked call did nothing: it runs again whole)
                    if wait:
                        await asyncio.sleep(wait)
                    try:
                        return _direct(self._loop_db, fn, write, autocommit)
                    except _Locked:
                        pass
            return await self._batcher.submit(fn, write)  # wait for the lock on the thread
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(self.backend, exc) from exc

    def _upkeep(self) -> None:
        """Expired rows of every table dropped, here on the loop (bounded sweeps, ~1 ms: on the
        store's thread they waited for the GIL between statements, and for the lock against this
        loop's writes, ~17 ms and up to 100 ms and more, while the WAL grew); then the WAL
        checkpointed and started over on the thread (the module's text says why)."""
        now = self._clock.time()

        def purge(db: sqlite3.Connection) -> None:
            for table in _SWEPT_BY:
                _sweep(db, table, now)

        def retrieved(done: asyncio.Future[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.warning("could not drop expired rows from the state store", exc_info=done.exception())

        on_thread = self._loop_db is None
        if self._loop_db is not None:
            try:
                _direct(self._loop_db, purge, True)
            except _Locked:  # another process writes: the thread waits for the lock instead
                on_thread = True
            except (sqlite3.Error, OSError):
                log.warning("could not drop expired rows from the state store", exc_info=True)
        if on_thread:
            self._batcher.submit(purge, True).add_done_callback(retrieved)
        loop = asyncio.get_running_loop()

        def on_loop(change: Callable[[], None]) -> Callable[[], None]:
            def call() -> None:  # on the thread
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody writes any more
                    loop.call_soon_threadsafe(change)

            return call

        self._batcher.restart_wal((on_loop(self._may_write.clear), on_loop(self._may_write.set)))

    async def claim(self, key: str, fingerprint: bytes, token: bytes, lease_s: float, ttl_s: float = 0.0) -> Claim:
        # The row is given its answer's lifetime now (`ttl_s` from the claim, never less than the
        # lease): recording the answer then rewrites the value alone. With the one-statement claim
        # of a new key and no expiry index, a keyed send writes ~3.3 WAL frames (6.7 before;
        # docs/performance.md).
        now = self._clock.time()
        row = (key, pending_record(token, fingerprint), now + max(ttl_s, lease_s), now + lease_s)

        def insert(db: sqlite3.Connection) -> bool:
            # A new key, the usual case: one statement, no transaction around it (a key with a row
            # is left as it is, and decided below).
            return db.execute("INSERT OR IGNORE INTO idempotency VALUES (?, ?, ?, ?)", row).rowcount == 1

        def claim(db: sqlite3.Connection) -> Claim:
            held_row = db.execute(
                "SELECT value, expires_at, lease_until FROM idempotency WHERE key = ?", (key,)
            ).fetchone()
            if held_row is not None and held_row[1] > now:
                held = parse_record(bytes(held_row[0]))
                if isinstance(held, Replay) or (held_row[2] if held_row[2] is not None else held_row[1]) > now:
                    return held
            db.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)", row)
            return Claimed(token)

        if await self._call(insert, autocommit=True):
            return Claimed(token)
        return await self._call(claim)  # the key has a row: live, answered, lapsed or expired

    async def complete(self, key: str, fingerprint: bytes, response: bytes, ttl_s: float) -> None:
        now = self._clock.time()
        record = done_record(fingerprint, response)

        def complete(db: sqlite3.Connection) -> None:
            # One statement either way, each atomic alone: the value, where the claim gave the row
            # this answer's lifetime already (an expiry past the lease, within `ttl_s` from now);
            # else (a claim not told the TTL, one renewed past it, a row gone or from an older
            # release) the whole row, with `ttl_s` from now.
            updated = db.execute(
                "UPDATE idempotency SET value = ?1, lease_until = NULL WHERE key = ?2 "
                "AND expires_at > lease_until AND expires_at > ?3 AND expires_at <= ?3 + ?4",
                (record, key, now, ttl_s),
            )
            if updated.rowcount == 0:
                db.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, NULL)", (key, record, now + ttl_s))

        await self._call(complete, autocommit=True)

    async def release(self, key: str, token: bytes) -> None:
        def release(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT value FROM idempotency WHERE key = ?", (key,)).fetchone()
            if row is not None and owned_by(bytes(row[0]), token):
                db.execute("DELETE FROM idempotency WHERE key = ?", (key,))

        await self._call(release)

    async def renew(self, key: str, token: bytes, lease_s: float) -> bool:
        expires = self._clock.time() + lease_s

        def renew(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT value FROM idempotency WHERE key = ?", (key,)).fetchone()
            if row is None or not owned_by(bytes(row[0]), token):
                return False
            # The row outlives its lease (a short TTL could otherwise let the purge drop a live claim).
            db.execute(
                "UPDATE idempotency SET lease_until = ?1, expires_at = max(expires_at, ?1) WHERE key = ?2",
                (expires, key),
            )
            return True

        return await self._call(renew)

    async def reserve_ids(self, count: int, floor: int) -> int:
        def reserve(db: sqlite3.Connection) -> int:
            db.execute("INSERT OR IGNORE INTO counters VALUES ('message_id', ?)", (floor - 1,))
            (last,) = db.execute(
                "UPDATE counters SET value = value + ? WHERE name = 'message_id' RETURNING value", (count,)
            ).fetchone()
            return int(last) - count + 1

        return await self._call(reserve)

    async def take(self, limits: Sequence[Limit], counts: Sequence[int] | None = None) -> Refused | None:
        now = self._clock.time()

        keys = quota_keys(limits, now)
        query = f"SELECT key, value FROM quota WHERE expires_at > ? AND key IN ({','.join('?' * len(keys))})"  # noqa: S608

        def take(db: sqlite3.Connection) -> Refused | None:
            # Every counter this charge reads, in one statement.
            values = {k: float(v) for k, v in db.execute(query, (now, *keys))}
            refused, writes = decide(limits, now, lambda key: values.get(key, 0.0), counts)
            if writes:
                db.executemany(
                    "INSERT OR REPLACE INTO quota VALUES (?, ?, ?)", [(k, v, now + ttl) for k, v, ttl in writes]
                )
            return refused

        return await self._call(take)

    async def get(self, namespace: str, key: str) -> bytes | None:
        now = self._clock.time()

        def get(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
            if row is None:
                row = db.execute(
                    "SELECT value FROM expiring WHERE namespace = ? AND key = ? AND expires_at > ?",
                    (namespace, key, now),
                ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._call(get, write=False)

    async def put(self, namespace: str, key: str, value: bytes, ttl_s: float | None = None) -> None:
        if ttl_s is None:
            await self._call(
                lambda db: db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (namespace, key, value))
            )
            return
        expires = self._clock.time() + ttl_s

        def put(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO expiring VALUES (?, ?, ?, ?)", (namespace, key, value, expires))

        await self._call(put)

    async def append(self, namespace: str, key: str, value: bytes, ttl_s: float, keep: int) -> None:
        expires = self._clock.time() + ttl_s

        def append(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO lists (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)",
                       (namespace, key, value, expires))  # fmt: skip
            # The whole list lives as long as its newest item; only the last `keep` are kept.
            db.execute("UPDATE lists SET expires_at = ? WHERE namespace = ? AND key = ?", (expires, namespace, key))
            db.execute(
                "DELETE FROM lists WHERE namespace = ? AND key = ? AND seq NOT IN "
                "(SELECT seq FROM lists WHERE namespace = ? AND key = ? ORDER BY seq DESC LIMIT ?)",
                (namespace, key, namespace, key, keep),
            )

        await self._call(append)

    async def items(self, namespace: str, key: str) -> list[bytes]:
        now = self._clock.time()

        def items(db: sqlite3.Connection) -> list[bytes]:
            rows = db.execute(
                "SELECT value FROM lists WHERE namespace = ? AND key = ? AND expires_at > ? ORDER BY seq",
                (namespace, key, now),
            ).fetchall()
            return [bytes(r[0]) for r in rows]

        return await self._call(items, write=False)

    def file_sizes(self) -> dict[str, int]:
        """Bytes on disk, by file (the database, its WAL): a metric, so a file that grows shows."""
        return {} if self._path is None else file_sizes(self._path)

    async def ping(self) -> None:
        await self._call(lambda db: db.execute("SELECT 1").fetchone(), write=False)

    async def close(self) -> None:
        await asyncio.to_thread(self._batcher.close)
        if self._loop_db is not None:
            self._loop_db.close()
