"""Decode a failed gateway call: ErrorInfo reason, BadRequest violations, RetryInfo, QuotaFailure."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

_STATUS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class GatewayCallError(Exception):
    """A failed call with its rich details decoded. `reason` is an `ErrorReason` value name."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: list[FieldViolation] = field(default_factory=list)
    retry_after_s: float | None = None
    quota_violations: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(f"{self.code.name}: {self.message}")

    @property
    def rq_uid(self) -> str | None:
        return self.metadata.get("rq_uid")

    @property
    def status_code(self) -> int | None:
        """SmartPush's numeric status code, when SmartPush answered with one."""
        raw = self.metadata.get("status_code")
        return int(raw) if raw is not None else None

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code.name,
            "message": self.message,
            "reason": self.reason,
            "domain": self.domain,
            "metadata": self.metadata,
            "field_violations": [{"field": v.field, "description": v.description} for v in self.field_violations],
            "retry_after_s": self.retry_after_s,
            "quota_violations": [{"subject": s, "description": d} for s, d in self.quota_violations],
        }


def decode(error: grpc.RpcError) -> GatewayCallError:
    """Turn a `grpc.RpcError` (sync or aio) into a GatewayCallError."""
    call: grpc.Call = error  # type: ignore[assignment]
    out = GatewayCallError(code=call.code(), message=call.details() or "")
    for key, value in call.trailing_metadata() or ():
        if key != _STATUS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                out.reason, out.domain, out.metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                out.field_violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                out.retry_after_s = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
            elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
                quota = error_details_pb2.QuotaFailure()
                detail.Unpack(quota)
                out.quota_violations = [(v.subject, v.description) for v in quota.violations]
    return out
