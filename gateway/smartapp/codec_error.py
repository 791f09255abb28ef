"""The error of SmartApp conversions: which key (or proto field) is wrong, and why."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from smartpush.gateway.v1 import errors_pb2

from gateway.errors import FieldViolation, GatewayError


class CodecError(GatewayError):
    """Wire JSON (or a proto) the other side cannot represent; `path` names the offending key."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            errors_pb2.ERROR_REASON_INVALID_REQUEST,
            f"invalid request: {path}: {detail}",
            field_violations=(FieldViolation(path, detail),),
        )
        self.path = path
        self.detail = detail


@contextmanager
def fields_under(prefix: str) -> Iterator[None]:
    """Report codec errors with their path under the request field that held the JSON or proto."""
    try:
        yield
    except CodecError as err:
        raise CodecError(prefix + err.path if err.path else prefix.rstrip("."), err.detail) from None
