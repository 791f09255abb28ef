"""Consent per (project, sub): a store interface, its SQLite default, and the send-time check.

The store never holds a sub in clear: rows are keyed by SHA-256 of (project, sub).
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from smartpush.gateway.v1 import errors_pb2, permission_pb2

from gateway.errors import GatewayError


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    project_id: str
    sub: str
    status: int  # RuntimePermissionStatus
    push_allowed: bool
    recorded_at: float
    source: str


class ConsentStore(Protocol):
    async def get(self, project_id: str, sub: str) -> ConsentRecord | None: ...

    async def put(self, record: ConsentRecord) -> None: ...

    async def close(self) -> None: ...


def consent_key(project_id: str, sub: str) -> str:
    return hashlib.sha256(f"{project_id}\0{sub}".encode()).hexdigest()


class SqliteConsentStore:
    """An embedded store that survives restarts. Reads and writes are local and take
    microseconds, so they run inline; a lock keeps one writer at a time."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS consent (key TEXT PRIMARY KEY, project_id TEXT NOT NULL, "
            "status INTEGER NOT NULL, push_allowed INTEGER NOT NULL, recorded_at REAL NOT NULL, source TEXT NOT NULL)"
        )
        self._lock = asyncio.Lock()

    async def get(self, project_id: str, sub: str) -> ConsentRecord | None:
        row = self._db.execute(
            "SELECT status, push_allowed, recorded_at, source FROM consent WHERE key = ?",
            (consent_key(project_id, sub),),
        ).fetchone()
        if row is None:
            return None
        return ConsentRecord(project_id, sub, int(row[0]), bool(row[1]), float(row[2]), str(row[3]))

    async def put(self, record: ConsentRecord) -> None:
        async with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO consent VALUES (?, ?, ?, ?, ?, ?)",
                (
                    consent_key(record.project_id, record.sub),
                    record.project_id,
                    record.status,
                    int(record.push_allowed),
                    record.recorded_at,
                    record.source,
                ),
            )

    async def close(self) -> None:
        self._db.close()


async def require_consent(store: ConsentStore, project_id: str, sub: str) -> None:
    """Raise FAILED_PRECONDITION unless push consent is on record for this user."""
    record = await store.get(project_id, sub)
    if record is not None and record.push_allowed:
        return
    if record is None or record.status == permission_pb2.RUNTIME_PERMISSION_STATUS_GRANTED:
        reason, text = errors_pb2.ERROR_REASON_CONSENT_MISSING, "no push consent is recorded for this user"
    elif record.status == permission_pb2.RUNTIME_PERMISSION_STATUS_SMARTAPP_NOT_ALLOWED:
        reason, text = errors_pb2.ERROR_REASON_SMARTAPP_NOT_ALLOWED, "SmartPush said this smartapp may not send pushes"
    else:
        reason, text = errors_pb2.ERROR_REASON_CONSENT_DENIED, "the user declined push notifications"
    metadata = {"project_id": project_id}
    if record is not None:
        metadata["consent_status"] = permission_pb2.RuntimePermissionStatus.Name(record.status)  # type: ignore[arg-type]
    raise GatewayError(reason, text, metadata=metadata)
