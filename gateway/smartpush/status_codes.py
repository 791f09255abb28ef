"""SmartPush numeric status codes (reference §5.2) -> gRPC code and ErrorReason (design §5)."""

from __future__ import annotations

from typing import NamedTuple

import grpc
from smartpush.gateway.v1 import errors_pb2 as e


class Mapping(NamedTuple):
    code: grpc.StatusCode
    reason: e.ErrorReason.ValueType
    meaning: str


_INVALID = grpc.StatusCode.INVALID_ARGUMENT
STATUS_CODES: dict[int, Mapping] = {
    1000: Mapping(_INVALID, e.ERROR_REASON_SCHEMA_VIOLATION, "schema violation"),
    1001: Mapping(_INVALID, e.ERROR_REASON_REQUEST_INTEGRITY, "request integrity error"),
    1002: Mapping(_INVALID, e.ERROR_REASON_CLIENT_ID_TYPE_NOT_ALLOWED, "clientId type not allowed"),
    1003: Mapping(_INVALID, e.ERROR_REASON_DELIVERY_PARAMETERS_INVALID, "delivery parameters invalid"),
    1004: Mapping(_INVALID, e.ERROR_REASON_CHANNEL_OR_SURFACE_UNKNOWN, "channel or surface unknown"),
    1005: Mapping(_INVALID, e.ERROR_REASON_SURFACE_NOT_DEFINED, "target surface not defined"),
    1006: Mapping(_INVALID, e.ERROR_REASON_CONFLICTING_PARAMETERS, "both mobile and device parameters"),
    1007: Mapping(_INVALID, e.ERROR_REASON_ORIGIN_SURFACE_UNKNOWN, "origin surface unknown"),
    1008: Mapping(_INVALID, e.ERROR_REASON_INVALID_TIME, "invalid time"),
    1009: Mapping(_INVALID, e.ERROR_REASON_PARAMETERS_SURFACE_MISMATCH, "parameters do not fit the surface"),
    1012: Mapping(_INVALID, e.ERROR_REASON_SUB_FORMAT_INVALID, "sub format invalid"),
    1013: Mapping(grpc.StatusCode.FAILED_PRECONDITION, e.ERROR_REASON_PUSH_NOT_ENABLED, "push not enabled"),
    1014: Mapping(grpc.StatusCode.RESOURCE_EXHAUSTED, e.ERROR_REASON_QUOTA_EXCEEDED, "overall limit exceeded"),
    1015: Mapping(_INVALID, e.ERROR_REASON_FILTERS_CONFLICT, "serial and product filter both set"),
    # 1016/1017 are split differently by S4 and salutejs (reference §5.3): both are template problems.
    1016: Mapping(grpc.StatusCode.FAILED_PRECONDITION, e.ERROR_REASON_TEMPLATE_NOT_FOUND, "template not found"),
    1017: Mapping(_INVALID, e.ERROR_REASON_TEMPLATE_VARIABLES_MISMATCH, "template variables mismatch"),
    1018: Mapping(grpc.StatusCode.RESOURCE_EXHAUSTED, e.ERROR_REASON_USER_QUOTA_EXCEEDED, "per-user limit exceeded"),
}
UNKNOWN_STATUS = Mapping(
    grpc.StatusCode.INTERNAL, e.ERROR_REASON_UPSTREAM_STATUS_UNKNOWN, "unknown SmartPush status code"
)
QUOTA_SUBJECTS = {1014: "project", 1018: "user"}


def lookup(status_code: int) -> Mapping:
    return STATUS_CODES.get(status_code, UNKNOWN_STATUS)
