"""One place where servicers turn domain errors into rich gRPC statuses."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import NoReturn, TypeVar

import grpc
from opentelemetry import trace

from gateway.errors import FieldViolation, GatewayError, invalid_argument, to_grpc_status
from gateway.smartapp.codec import CodecError

T = TypeVar("T")


async def abort(context: grpc.aio.ServicerContext[object, object], err: GatewayError) -> NoReturn:
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("smartpush.error_reason", err.reason_name)
        if err.status_code is not None:
            span.set_attribute("smartpush.status_codes", [err.status_code])
    status = to_grpc_status(err)
    await context.abort(status.code, status.details, status.trailing_metadata)


async def guarded(context: grpc.aio.ServicerContext[object, object], call: Awaitable[T], field_prefix: str = "") -> T:
    """Await `call`; a GatewayError or a CodecError (malformed input) ends the RPC with details."""
    try:
        return await call
    except GatewayError as err:
        await abort(context, err)
    except CodecError as err:
        await abort(context, invalid_argument([FieldViolation(field_prefix + err.path, err.message)]))
