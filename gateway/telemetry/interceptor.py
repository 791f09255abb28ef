"""A lean grpc.aio server interceptor: one SERVER span per RPC (RPC semantic conventions, the
caller's W3C context continued), RPC duration and in-flight metrics. Health and reflection
are left alone. Wrapped handlers are built once per method, not per call."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.telemetry.setup import Telemetry

EXCLUDED_SERVICES = frozenset({"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"})
Metadata = Iterable[tuple[str, str | bytes]]


class _MetadataGetter(Getter[Metadata]):
    def get(self, carrier: Metadata, key: str) -> list[str] | None:
        values = [v for k, v in carrier if k == key and isinstance(v, str)]
        return values or None

    def keys(self, carrier: Metadata) -> list[str]:
        return [k for k, _ in carrier]


_GETTER = _MetadataGetter()

if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # generic only in the type stubs
    _Interceptor = grpc.aio.ServerInterceptor


class TelemetryInterceptor(_Interceptor):
    def __init__(self, telemetry: Telemetry, excluded: Iterable[str] = EXCLUDED_SERVICES) -> None:
        self._t = telemetry
        self._excluded = frozenset(excluded)
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        if method in self._handlers:
            return self._handlers[method]
        handler = await continuation(handler_call_details)
        service, _, name = method.lstrip("/").partition("/")
        wrapped: grpc.RpcMethodHandler[Any, Any]
        if handler is None or service in self._excluded or handler.unary_unary is None:
            return handler  # unknown method (UNIMPLEMENTED), excluded, or streaming: untouched
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._wrap(handler.unary_unary, service, name),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._handlers[method] = wrapped
        return wrapped

    def _wrap(
        self, behavior: Callable[..., Awaitable[Any]], service: str, method: str
    ) -> Callable[..., Awaitable[Any]]:
        tracer, in_flight, duration = self._t.tracer, self._t.in_flight, self._t.rpc_duration
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
