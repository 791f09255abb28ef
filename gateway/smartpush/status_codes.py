"""SmartPush numeric status codes (reference §5.2) -> ErrorReason (its gRPC code is in gateway.errors)."""

from __future__ import annotations

from typing import NamedTuple

from smartpush.gateway.v1 import errors_pb2 as e


class Mapping(NamedTuple):
    reason: e.ErrorReason.ValueType
    meaning: str


STATUS_CODES: dict[int, Mapping] = {
    1000: Mapping(e.ERROR_REASON_SCHEMA_VIOLATION, "schema violation"),
    1001: Mapping(e.ERROR_REASON_REQUEST_INTEGRITY, "request integrity error"),
    1002: Mapping(e.ERROR_REASON_CLIENT_ID_TYPE_NOT_ALLOWED, "clientId type not allowed"),
    1003: Mapping(e.ERROR_REASON_DELIVERY_PARAMETERS_INVALID, "delivery parameters invalid"),
    1004: Mapping(e.ERROR_REASON_CHANNEL_OR_SURFACE_UNKNOWN, "channel or surface unknown"),
    1005: Mapping(e.ERROR_REASON_SURFACE_NOT_DEFINED, "target surface not defined"),
    1006: Mapping(e.ERROR_REASON_CONFLICTING_PARAMETERS, "both mobile and device parameters"),
    1007: Mapping(e.ERROR_REASON_ORIGIN_SURFACE_UNKNOWN, "origin surface unknown"),
    1008: Mapping(e.ERROR_REASON_INVALID_TIME, "invalid time"),
    1009: Mapping(e.ERROR_REASON_PARAMETERS_SURFACE_MISMATCH, "parameters do not fit the surface"),
    1012: Mapping(e.ERROR_REASON_SUB_FORMAT_INVALID, "sub format invalid"),
    1013: Mapping(e.ERROR_REASON_PUSH_NOT_ENABLED, "push not enabled"),
    1014: Mapping(e.ERROR_REASON_QUOTA_EXCEEDED, "overall limit exceeded"),
    1015: Mapping(e.ERROR_REASON_FILTERS_CONFLICT, "serial and product filter both set"),
    1016: Mapping(e.ERROR_REASON_TEMPLATE_NOT_FOUND, "template not found"),
    1017: Mapping(e.ERROR_REASON_TEMPLATE_VARIABLES_MISMATCH, "template variables mismatch"),
    1018: Mapping(e.ERROR_REASON_USER_QUOTA_EXCEEDED, "per-user limit exceeded"),
}
UNKNOWN_STATUS = Mapping(e.ERROR_REASON_UPSTREAM_STATUS_UNKNOWN, "unknown SmartPush status code")
QUOTA_SUBJECTS = {1014: "project", 1018: "user"}


S4_OVERRIDES = {1016: Mapping(e.ERROR_REASON_TEMPLATE_VARIABLES_MISMATCH, "template variables mismatch")}


def lookup(status_code: int, template_error_codes: str = "salutejs") -> Mapping:
    if template_error_codes == "s4" and status_code in S4_OVERRIDES:
        return S4_OVERRIDES[status_code]
    return STATUS_CODES.get(status_code, UNKNOWN_STATUS)
