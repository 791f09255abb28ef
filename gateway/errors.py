"""The gateway's error vocabulary: domain errors name a reason, one table gives each its gRPC code.

Domain code raises `GatewayError(reason, message, ...)` and never picks a transport status;
`REASONS` below declares, once per `ErrorReason`, the gRPC code and whether a client's channel
may retry it (python-api-core's `exceptions.py` shape). `to_grpc_status` is the only place that
builds the `google.rpc.Status` (ErrorInfo, BadRequest, RetryInfo, QuotaFailure), and it keeps
every answer small enough for a default client.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from smartpush.gateway.v1 import errors_pb2 as e

DOMAIN = "smartpush.gateway"
Reason: TypeAlias = e.ErrorReason.ValueType
C = grpc.StatusCode


class ReasonSpec(NamedTuple):
    code: grpc.StatusCode
    # True only where nothing reached SmartPush, so a client's channel may send the call again
    # (to another replica). Everything else carries a "do not retry" pushback: one retry layer.
    client_may_retry: bool = False


# The one table: every reason the gateway answers with, and its gRPC code.
REASONS: dict[Reason, ReasonSpec] = {
    e.ERROR_REASON_INVALID_REQUEST: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_SCHEMA_VIOLATION: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_REQUEST_INTEGRITY: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_CLIENT_ID_TYPE_NOT_ALLOWED: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_DELIVERY_PARAMETERS_INVALID: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_CHANNEL_OR_SURFACE_UNKNOWN: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_SURFACE_NOT_DEFINED: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_CONFLICTING_PARAMETERS: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_ORIGIN_SURFACE_UNKNOWN: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_INVALID_TIME: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_PARAMETERS_SURFACE_MISMATCH: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_SUB_FORMAT_INVALID: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_PUSH_NOT_ENABLED: ReasonSpec(C.FAILED_PRECONDITION),
    e.ERROR_REASON_QUOTA_EXCEEDED: ReasonSpec(C.RESOURCE_EXHAUSTED),
    e.ERROR_REASON_FILTERS_CONFLICT: ReasonSpec(C.INVALID_ARGUMENT),
    # 1016/1017 are split differently by S4 and salutejs (reference §5.3): both are template problems.
    e.ERROR_REASON_TEMPLATE_NOT_FOUND: ReasonSpec(C.FAILED_PRECONDITION),
    e.ERROR_REASON_TEMPLATE_VARIABLES_MISMATCH: ReasonSpec(C.INVALID_ARGUMENT),
    e.ERROR_REASON_USER_QUOTA_EXCEEDED: ReasonSpec(C.RESOURCE_EXHAUSTED),
    e.ERROR_REASON_UPSTREAM_STATUS_UNKNOWN: ReasonSpec(C.INTERNAL),
    e.ERROR_REASON_UPSTREAM_AUTH: ReasonSpec(C.UNAVAILABLE),
    # The gateway already retried these within the caller's deadline.
    e.ERROR_REASON_UPSTREAM_UNAVAILABLE: ReasonSpec(C.UNAVAILABLE),
    e.ERROR_REASON_UPSTREAM_RATE_LIMITED: ReasonSpec(C.RESOURCE_EXHAUSTED),
    e.ERROR_REASON_UPSTREAM_BAD_RESPONSE: ReasonSpec(C.INTERNAL),
    # Token endpoint refusals are the gateway's configuration problem, not worth a blind retry.
    e.ERROR_REASON_TOKEN_SCOPE_INVALID: ReasonSpec(C.FAILED_PRECONDITION),
    e.ERROR_REASON_TOKEN_CREDENTIALS_MALFORMED: ReasonSpec(C.FAILED_PRECONDITION),
    e.ERROR_REASON_TOKEN_SCOPE_EMPTY: ReasonSpec(C.FAILED_PRECONDITION),
    e.ERROR_REASON_TOKEN_CREDENTIALS_REJECTED: ReasonSpec(C.FAILED_PRECONDITION),
    e.ERROR_REASON_TOKEN_SCOPE_NOT_GRANTED: ReasonSpec(C.FAILED_PRECONDITION),
    e.ERROR_REASON_TOKEN_UNAVAILABLE: ReasonSpec(C.UNAVAILABLE),
    e.ERROR_REASON_PROFILE_NOT_FOUND: ReasonSpec(C.NOT_FOUND),
    e.ERROR_REASON_INLINE_CREDENTIALS_DISABLED: ReasonSpec(C.PERMISSION_DENIED),
    e.ERROR_REASON_IDEMPOTENCY_KEY_REUSED: ReasonSpec(C.FAILED_PRECONDITION),
    e.ERROR_REASON_DEADLINE_TOO_SHORT: ReasonSpec(C.DEADLINE_EXCEEDED),
    e.ERROR_REASON_INTERNAL: ReasonSpec(C.INTERNAL),
    e.ERROR_REASON_CONSENT_MISSING: ReasonSpec(C.FAILED_PRECONDITION),
    e.ERROR_REASON_CONSENT_DENIED: ReasonSpec(C.FAILED_PRECONDITION),
    e.ERROR_REASON_SMARTAPP_NOT_ALLOWED: ReasonSpec(C.FAILED_PRECONDITION),
    e.ERROR_REASON_TEMPLATE_UNKNOWN: ReasonSpec(C.NOT_FOUND),
    e.ERROR_REASON_SHUTTING_DOWN: ReasonSpec(C.UNAVAILABLE, client_may_retry=True),
    e.ERROR_REASON_SERVICE_UNKNOWN: ReasonSpec(C.NOT_FOUND),
    # The store is shared by every replica: another one would not do better right now.
    e.ERROR_REASON_STATE_STORE_UNAVAILABLE: ReasonSpec(C.UNAVAILABLE),
    e.ERROR_REASON_IDEMPOTENCY_IN_PROGRESS: ReasonSpec(C.ABORTED),
    e.ERROR_REASON_CALLER_UNAUTHENTICATED: ReasonSpec(C.UNAUTHENTICATED),
    e.ERROR_REASON_CALLER_NOT_ALLOWED: ReasonSpec(C.PERMISSION_DENIED),
    e.ERROR_REASON_CALLER_RATE_LIMITED: ReasonSpec(C.RESOURCE_EXHAUSTED),
    e.ERROR_REASON_GATEWAY_QUOTA_EXCEEDED: ReasonSpec(C.RESOURCE_EXHAUSTED),
    # Nothing was sent and another replica may have room: the pushback carries the retry delay.
    e.ERROR_REASON_OVERLOADED: ReasonSpec(C.UNAVAILABLE, client_may_retry=True),
    e.ERROR_REASON_DELIVERY_STATUS_UNKNOWN: ReasonSpec(C.NOT_FOUND),
}

# Answers stay well under a default client's 8 KiB of metadata (grpc-message is percent-encoded,
# grpc-status-details-bin base64-encoded): these bound what goes in before encoding.
MESSAGE_MAX = 300
DETAILS_MAX_BYTES = 3000
_TEXT_MAX = 200  # one field violation's description, one metadata value
_FIELD_MAX = 160  # one field path


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """A broken field rule; `field` is the proto field path, e.g. `delivery.destinations[1].surface`."""

    field: str
    description: str


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    subject: str
    description: str


class GatewayError(Exception):
    """A call's failure, with everything its gRPC status and rich details are made from.

    A plain class (not a dataclass): compiled by mypyc, an exception's class cannot be one."""

    def __init__(
        self,
        reason: Reason,
        message: str,
        status_code: int | None = None,  # SmartPush's numeric status code, when it answered with one
        rq_uid: str | None = None,
        field_violations: Sequence[FieldViolation] = (),
        quota_violations: Sequence[QuotaViolation] = (),
        retry_after_s: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status_code = status_code
        self.rq_uid = rq_uid
        self.field_violations = field_violations
        self.quota_violations = quota_violations
        self.retry_after_s = retry_after_s
        self.metadata: Mapping[str, str] = {} if metadata is None else metadata

    def __repr__(self) -> str:
        return f"GatewayError({e.ErrorReason.Name(self.reason)}, {self.message!r})"

    @property
    def code(self) -> grpc.StatusCode:
        return REASONS[self.reason].code

    @property
    def client_may_retry(self) -> bool:
        return REASONS[self.reason].client_may_retry

    @property
    def reason_name(self) -> str:
        return e.ErrorReason.Name(self.reason)


class StoreUnavailable(GatewayError):
    """The state store cannot answer (gateway/state). Here, not beside the store: GatewayError is
    compiled in the shipped build, and a compiled class takes no interpreted subclasses."""

    def __init__(self, backend: str, exc: BaseException) -> None:
        # The exception's type only: its text may carry a URL with a password.
        super().__init__(
            e.ERROR_REASON_STATE_STORE_UNAVAILABLE,
            f"the {backend} state store is unavailable ({type(exc).__name__}); nothing was sent",
            metadata={"store": backend},
        )


def invalid_argument(violations: Sequence[FieldViolation], rq_uid: str | None = None) -> GatewayError:
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return GatewayError(
        e.ERROR_REASON_INVALID_REQUEST,
        f"invalid request: {first.field}: {first.description}{more}",
        rq_uid=rq_uid,
        field_violations=violations,
    )


def internal(rq_uid: str | None) -> GatewayError:
    """What a caller sees of a fault inside the gateway: no exception text, the RqUID to look up."""
    where = f" (rq_uid {rq_uid})" if rq_uid else ""
    return GatewayError(
        e.ERROR_REASON_INTERNAL, f"internal gateway error{where}; see the gateway's logs", rq_uid=rq_uid
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def _retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    seconds = max(seconds, 0.0)
    whole = math.floor(seconds)
    return error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
    )


def _bad_request(violations: Sequence[FieldViolation], budget: int) -> error_details_pb2.BadRequest:
    """As many violations as fit in `budget` bytes, then one line saying how many were left out."""
    out = error_details_pb2.BadRequest()
    for i, v in enumerate(violations):
        item = error_details_pb2.BadRequest.FieldViolation(
            field=_clip(v.field, _FIELD_MAX), description=_clip(v.description, _TEXT_MAX)
        )
        if out.ByteSize() + item.ByteSize() + 8 > budget - 64:  # room for the "more" line
            left = len(violations) - i
            out.field_violations.add(field="…", description=f"and {left} more violation(s) not shown")
            break
        out.field_violations.append(item)
    return out


def to_grpc_status(err: GatewayError) -> grpc.Status:
    result: grpc.Status = rpc_status.to_status(to_rpc_status(err))
    return result


def to_rpc_status(err: GatewayError) -> status_pb2.Status:
    """The `google.rpc.Status` of an error, with its details (also what a batch item carries)."""
    metadata = {_clip(k, 64): _clip(v, _TEXT_MAX) for k, v in list(err.metadata.items())[:16]}
    if err.rq_uid:
        metadata["rq_uid"] = _clip(err.rq_uid, 64)
    if err.status_code is not None:
        metadata["status_code"] = str(err.status_code)
    details = [_pack(error_details_pb2.ErrorInfo(reason=err.reason_name, domain=DOMAIN, metadata=metadata))]
    if err.retry_after_s is not None:
        details.append(_pack(_retry_info(err.retry_after_s)))
    if err.quota_violations:
        quota = error_details_pb2.QuotaFailure(
            violations=[
                error_details_pb2.QuotaFailure.Violation(
                    subject=_clip(v.subject, _FIELD_MAX), description=_clip(v.description, _TEXT_MAX)
                )
                for v in err.quota_violations[:8]
            ]
        )
        details.append(_pack(quota))
    if err.field_violations:
        used = sum(d.ByteSize() for d in details)
        details.append(_pack(_bad_request(err.field_violations, DETAILS_MAX_BYTES - used)))
    return status_pb2.Status(
        code=getattr(code_pb2, err.code.name), message=_clip(err.message, MESSAGE_MAX), details=details
    )
