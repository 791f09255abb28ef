"""The embedded state store: one SQLite file shared by every worker of a host (WAL).

Each call runs on the store's own thread, so a write waiting for another process's lock never
blocks the event loop. A claim is one IMMEDIATE transaction (the write lock is taken before the
read), which makes claim-or-read atomic across processes. Every few hundred transactions, expired
rows of every table are dropped, so the file stays bounded by the TTLs.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from gateway.clock import Clock
from gateway.state.limits import Limit, Refused, decide
from gateway.state.store import Claim, Claimed, StoreUnavailable, done_record, owned_by, parse_record, pending_record

T = TypeVar("T")
_PURGE_EVERY = 500  # transactions
_EXPIRING_TABLES = ("idempotency", "quota", "expiring", "lists")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at)",
    "CREATE TABLE IF NOT EXISTS kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
    "PRIMARY KEY (namespace, key))",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quota (key TEXT PRIMARY KEY, value REAL NOT NULL, expires_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS expiring (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
    "expires_at REAL NOT NULL, PRIMARY KEY (namespace, key))",
    "CREATE TABLE IF NOT EXISTS lists (seq INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, "
    "key TEXT NOT NULL, value BLOB NOT NULL, expires_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS lists_key ON lists (namespace, key, seq)",
)


def _set_up(db: sqlite3.Connection, within_s: float) -> None:
    """WAL and the schema. Workers of one host start together on one new file: switching it to WAL
    can answer "database is locked" at once (no busy wait for that), so a locked file is retried."""
    give_up = time.monotonic() + within_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
            for statement in _SCHEMA:
                db.execute(statement)
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > give_up:
                raise
            time.sleep(0.02)


class SqliteStore:
    backend = "sqlite"

    def __init__(self, path: Path | str, clock: Clock, busy_timeout_s: float = 5.0) -> None:
        """Opens (and creates) the file now, so a path that cannot be used stops start-up."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=busy_timeout_s)
        _set_up(self._db, busy_timeout_s)
        self._writes = 0  # transactions so far: every _PURGE_EVERY-th also drops expired rows

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(self.backend, exc) from exc

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> Callable[[], T]:
        self._writes += 1
        purge = self._writes % _PURGE_EVERY == 0

        def run() -> T:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if purge:
                    now = self._clock.time()
                    for table in _EXPIRING_TABLES:
                        self._db.execute(f"DELETE FROM {table} WHERE expires_at <= ?", (now,))  # noqa: S608
                result = fn(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

        return run

    async def claim(self, key: str, fingerprint: bytes, token: bytes, lease_s: float) -> Claim:
        now = self._clock.time()

        def claim(db: sqlite3.Connection) -> Claim:
            row = db.execute("SELECT value, expires_at FROM idempotency WHERE key = ?", (key,)).fetchone()
            if row is not None and row[1] > now:
                return parse_record(bytes(row[0]))
            db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)",
                (key, pending_record(token, fingerprint), now + lease_s),
            )
            return Claimed(token)

        return await self._run(self._transaction(claim))

    async def complete(self, key: str, fingerprint: bytes, response: bytes, ttl_s: float) -> None:
        expires = self._clock.time() + ttl_s
        await self._run(
            lambda: self._db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)",
                (key, done_record(fingerprint, response), expires),
            )
        )

    async def release(self, key: str, token: bytes) -> None:
        def release(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT value FROM idempotency WHERE key = ?", (key,)).fetchone()
            if row is not None and owned_by(bytes(row[0]), token):
                db.execute("DELETE FROM idempotency WHERE key = ?", (key,))

        await self._run(self._transaction(release))

    async def renew(self, key: str, token: bytes, lease_s: float) -> bool:
        expires = self._clock.time() + lease_s

        def renew(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT value FROM idempotency WHERE key = ?", (key,)).fetchone()
            if row is None or not owned_by(bytes(row[0]), token):
                return False
            db.execute("UPDATE idempotency SET expires_at = ? WHERE key = ?", (expires, key))
            return True

        return await self._run(self._transaction(renew))

    async def reserve_ids(self, count: int, floor: int) -> int:
        def reserve(db: sqlite3.Connection) -> int:
            db.execute("INSERT OR IGNORE INTO counters VALUES ('message_id', ?)", (floor - 1,))
            (last,) = db.execute(
                "UPDATE counters SET value = value + ? WHERE name = 'message_id' RETURNING value", (count,)
            ).fetchone()
            return int(last) - count + 1

        return await self._run(self._transaction(reserve))

    async def take(self, limits: Sequence[Limit]) -> Refused | None:
        now = self._clock.time()

        def take(db: sqlite3.Connection) -> Refused | None:
            def read(key: str) -> float:
                row = db.execute("SELECT value FROM quota WHERE key = ? AND expires_at > ?", (key, now)).fetchone()
                return 0.0 if row is None else float(row[0])

            refused, writes = decide(limits, now, read)
            for key, value, ttl in writes:
                db.execute("INSERT OR REPLACE INTO quota VALUES (?, ?, ?)", (key, value, now + ttl))
            return refused

        return await self._run(self._transaction(take))

    async def get(self, namespace: str, key: str) -> bytes | None:
        now = self._clock.time()

        def get() -> bytes | None:
            row = self._db.execute("SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
            if row is None:
                row = self._db.execute(
                    "SELECT value FROM expiring WHERE namespace = ? AND key = ? AND expires_at > ?",
                    (namespace, key, now),
                ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._run(get)

    async def put(self, namespace: str, key: str, value: bytes, ttl_s: float | None = None) -> None:
        if ttl_s is None:
            await self._run(
                lambda: self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (namespace, key, value))
            )
            return
        expires = self._clock.time() + ttl_s

        def put(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO expiring VALUES (?, ?, ?, ?)", (namespace, key, value, expires))

        await self._run(self._transaction(put))

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

        await self._run(self._transaction(append))

    async def items(self, namespace: str, key: str) -> list[bytes]:
        now = self._clock.time()

        def items() -> list[bytes]:
            rows = self._db.execute(
                "SELECT value FROM lists WHERE namespace = ? AND key = ? AND expires_at > ? ORDER BY seq",
                (namespace, key, now),
            ).fetchall()
            return [bytes(r[0]) for r in rows]

        return await self._run(items)

    async def ping(self) -> None:
        await self._run(lambda: self._db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._db.close)
        self._pool.shutdown(wait=True)
