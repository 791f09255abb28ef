"""Consent per (project, sub): a store interface, its form on the shared state store, and the send-time check.

The store never holds a sub in clear: rows are keyed by SHA-256 of (project, sub).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Protocol

from smartpush.gateway.v1 import errors_pb2, permission_pb2

from gateway.errors import GatewayError
from gateway.state.store import StateStore


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


class StoredConsent:
    """Consent on the shared state store: recorded through any process, enforced by all, kept
    across restarts. Keyed by SHA-256 of (project, sub); the value holds no sub."""

    NAMESPACE = "consent"

    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def get(self, project_id: str, sub: str) -> ConsentRecord | None:
        raw = await self._store.get(self.NAMESPACE, consent_key(project_id, sub))
        if raw is None:
            return None
        data = json.loads(raw)
        return ConsentRecord(
            project_id, sub, int(data["status"]), bool(data["push_allowed"]), float(data["recorded_at"]), data["source"]
        )

    async def put(self, record: ConsentRecord) -> None:
        value = {
            "project_id": record.project_id,
            "status": record.status,
            "push_allowed": record.push_allowed,
            "recorded_at": record.recorded_at,
            "source": record.source,
        }
        await self._store.put(self.NAMESPACE, consent_key(record.project_id, record.sub), json.dumps(value).encode())

    async def close(self) -> None:
        """The store is closed by its owner."""


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
