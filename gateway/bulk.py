"""send-bulk: one push per row of a CSV or JSON Lines file, through SendBatch, resumable.

Rows: `sub` (required), `project_id` (else --project), template values as `header.<name>` and
`body.<name>` columns (CSV) or `header`/`body` objects (JSON Lines). Every row's idempotency key
is derived from the file's content and the row's number, so running the same file again after an
interruption replays what was sent and sends only the rest: nothing twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.rpc import code_pb2
from smartpush.gateway.v1 import push_service_pb2

from gateway.status_text import describe


class RowError(ValueError):
    def __init__(self, row: int, problem: str) -> None:
        super().__init__(f"row {row}: {problem}")


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # 1-based, as editors count data rows
    sub: str
    project_id: str
    header: dict[str, str]
    body: dict[str, str]


def file_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:20]


def read_rows(path: Path, default_project: str) -> Iterator[Row]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate((ln for ln in text.splitlines() if ln.strip()), start=1):
            try:
                data = json.loads(line)
            except ValueError:
                raise RowError(number, "not a JSON object") from None
            if not isinstance(data, dict):
                raise RowError(number, "not a JSON object")
            yield _row(number, data, data.get("header") or {}, data.get("body") or {}, default_project)
    else:
        for number, data in enumerate(csv.DictReader(io.StringIO(text)), start=1):
            header = {k[7:]: v for k, v in data.items() if k and k.startswith("header.") and v}
            body = {k[5:]: v for k, v in data.items() if k and k.startswith("body.") and v}
            yield _row(number, data, header, body, default_project)


def _row(number: int, data: dict[str, Any], header: Any, body: Any, default_project: str) -> Row:
    sub = str(data.get("sub") or "")
    if not sub:
        raise RowError(number, "no `sub`")
    if not isinstance(header, dict) or not isinstance(body, dict):
        raise RowError(number, "`header` and `body` must be objects")
    project = str(data.get("project_id") or default_project)
    if not project:
        raise RowError(number, "no `project_id` (and no --project)")
    return Row(number, sub, project, {k: str(v) for k, v in header.items()}, {k: str(v) for k, v in body.items()})


def request_for(row: Row, template: push_service_pb2.SendRequest, key: str) -> push_service_pb2.SendRequest:
    """The shared options (`template`) with this row's recipient, values and idempotency key."""
    request = push_service_pb2.SendRequest()
    request.CopyFrom(template)
    request.sub = row.sub
    request.project_id = row.project_id
    request.delivery.template_content.header_values.update(row.header)
    request.delivery.template_content.body_values.update(row.body)
    request.idempotency_key = f"bulk-{key}-{row.number}"
    return request


@dataclass
class Summary:
    sent: int = 0
    replayed: int = 0
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(self.failed.values())


def outcome(row: Row, result: push_service_pb2.SendBatchResult, summary: Summary) -> dict[str, Any]:
    """One line of the results file; the sub only as a hash."""
    line: dict[str, Any] = {"row": row.number, "sub_hash": hashlib.sha256(row.sub.encode()).hexdigest()[:16]}
    if result.status.code == code_pb2.OK:
        replayed = result.response.replayed
        summary.replayed += replayed
        summary.sent += not replayed
        line.update(status="OK", rq_uid=result.response.rq_uid, replayed=replayed)
        return line
    described = describe(result.status)
    code, reason = described["code"], described.get("reason", "")
    summary.failed[reason or code] = summary.failed.get(reason or code, 0) + 1
    rq_uid = described.get("metadata", {}).get("rq_uid", "")
    line.update(status=code, reason=reason, message=result.status.message, rq_uid=rq_uid)
    return line
