"""One SERVER span per RPC (RPC semantic conventions, the caller's W3C context continued), RPC
duration and in-flight metrics, wrapped around each API servicer method once at start-up.

Not a grpc.aio ServerInterceptor: with any interceptor installed, grpc.aio looks every call's
handler up through a chain of coroutines instead of its direct table. Health and reflection
servicers are never wrapped, so they make no spans.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.telemetry.setup import Telemetry

Metadata = Iterable[tuple[str, str | bytes]]


class _MetadataGetter(Getter[Metadata]):
    def get(self, carrier: Metadata, key: str) -> list[str] | None:
        values = [v for k, v in carrier if k == key and isinstance(v, str)]
        return values or None

    def keys(self, carrier: Metadata) -> list[str]:
        return [k for k, _ in carrier]


_GETTER = _MetadataGetter()

S = TypeVar("S")


def instrument(servicer: S, service: ServiceDescriptor, telemetry: Telemetry) -> S:
    """The servicer with each unary-unary method traced (as is when telemetry is off)."""
    if not telemetry.enabled:
        return servicer
    for method in service.methods:
        if method.client_streaming or method.server_streaming:
            continue  # none today; a streaming method would need its own span handling
        behavior = getattr(servicer, method.name)
        setattr(servicer, method.name, _traced(behavior, telemetry, service.full_name, method.name))
    return servicer


def _traced(
    behavior: Callable[..., Awaitable[Any]], t: Telemetry, service: str, method: str
) -> Callable[..., Awaitable[Any]]:
    tracer, in_flight, duration = t.tracer, t.in_flight, t.rpc_duration
    span_name = f"{service}/{method}"
    base = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
    key = ("grpc", service, method)

    async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        parent = propagate.extract(context.invocation_metadata() or (), getter=_GETTER)
        start = time.perf_counter()
        in_flight.add(key)
        # start_span + attach rather than start_as_current_span: the same span made current,
        # without two generator-based context managers per call.
        span = tracer.start_span(span_name, context=parent, kind=SpanKind.SERVER, attributes=base)
        token = otel_context.attach(trace.set_span_in_context(span))
        code = grpc.StatusCode.OK
        try:
            return await behavior(request, context)
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            if code == grpc.StatusCode.OK:
                code = grpc.StatusCode.UNKNOWN
            raise
        finally:
            otel_context.detach(token)
            number = code.value[0]
            span.set_attribute("rpc.grpc.status_code", number)
            if code != grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, code.name))
            span.end()
            in_flight.add(key, -1)
            duration.record((time.perf_counter() - start) * 1000, {**base, "rpc.grpc.status_code": number})

    return traced
