"""The gateway's error vocabulary and its one translation into a rich gRPC status.

Everything below the servicers raises `GatewayError`; `to_grpc_status` is the only
place that turns it into `google.rpc.Status` with ErrorInfo, BadRequest, RetryInfo
and QuotaFailure details.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from smartpush.gateway.v1 import errors_pb2

DOMAIN = "smartpush.gateway"
Reason: TypeAlias = errors_pb2.ErrorReason.ValueType


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """A broken field rule; `field` is the proto field path, e.g. `delivery.destinations[1].surface`."""

    field: str
    description: str


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    subject: str
    description: str


@dataclass(eq=False)
class GatewayError(Exception):
    code: grpc.StatusCode
    reason: Reason
    message: str
    status_code: int | None = None  # SmartPush's numeric status code, when it answered with one
    rq_uid: str | None = None
    field_violations: Sequence[FieldViolation] = ()
    quota_violations: Sequence[QuotaViolation] = ()
    retry_after_s: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def reason_name(self) -> str:
        return errors_pb2.ErrorReason.Name(self.reason)


def invalid_argument(violations: Sequence[FieldViolation], rq_uid: str | None = None) -> GatewayError:
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return GatewayError(
        grpc.StatusCode.INVALID_ARGUMENT,
        errors_pb2.ERROR_REASON_INVALID_REQUEST,
        f"invalid request: {first.field}: {first.description}{more}",
        rq_uid=rq_uid,
        field_violations=violations,
    )


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_grpc_status(err: GatewayError) -> grpc.Status:
    metadata = dict(err.metadata)
    if err.rq_uid:
        metadata["rq_uid"] = err.rq_uid
    if err.status_code is not None:
        metadata["status_code"] = str(err.status_code)
    details = [_pack(error_details_pb2.ErrorInfo(reason=err.reason_name, domain=DOMAIN, metadata=metadata))]
    if err.field_violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                        for v in err.field_violations
                    ]
                )
            )
        )
    if err.quota_violations:
        details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(subject=v.subject, description=v.description)
                        for v in err.quota_violations
                    ]
                )
            )
        )
    if err.retry_after_s is not None:
        whole = math.floor(err.retry_after_s)
        delay = duration_pb2.Duration(seconds=whole, nanos=int((err.retry_after_s - whole) * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=getattr(code_pb2, err.code.name), message=err.message, details=details)
    result: grpc.Status = rpc_status.to_status(status)
    return result


def upstream_failure(
    code: grpc.StatusCode,
    reason: Reason,
    message: str,
    *,
    rq_uid: str | None,
    status_code: int | None = None,
    retry_after_s: float | None = None,
    metadata: Mapping[str, str] | None = None,
) -> GatewayError:
    return GatewayError(
        code,
        reason,
        message,
        status_code=status_code,
        rq_uid=rq_uid,
        retry_after_s=retry_after_s,
        metadata=dict(metadata or {}),
    )
