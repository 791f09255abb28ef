"""One SERVER span per RPC (RPC semantic conventions, the caller's W3C context continued), RPC
duration and in-flight metrics, opened and closed by the edge (gateway.api.edge) for API methods.

Not a grpc.aio ServerInterceptor: with any interceptor installed, grpc.aio looks every call's
handler up through a chain of coroutines instead of its direct table. Health and reflection
calls make no spans.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import grpc
from mypy_extensions import mypyc_attr
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.telemetry.histograms import sampled_context
from gateway.telemetry.setup import Telemetry

if TYPE_CHECKING:
    from gateway.errors import GatewayError

Metadata = Iterable[tuple[str, str | bytes]]


@mypyc_attr(native_class=False)  # its base is interpreted (docs/performance.md: compiled build)
class _MetadataGetter(Getter[Metadata]):
    def get(self, carrier: Metadata, key: str) -> list[str] | None:
        values = [v for k, v in carrier if k == key and isinstance(v, str)]
        return values or None

    def keys(self, carrier: Metadata) -> list[str]:
        return [k for k, _ in carrier]


_GETTER = _MetadataGetter()
_OK = grpc.StatusCode.OK  # once: an Enum member read from its class is a Python hook call
_ROOT = otel_context.Context()  # what extract returns when no header is there: no parent


class RpcSpans:
    """The SERVER span and RPC metrics of one method; `begin` per call, `end` with its status code."""

    def __init__(self, t: Telemetry, service: str, method: str) -> None:
        self._tracer, self._in_flight, self._duration = t.tracer, t.in_flight, t.rpc_duration
        self._name = f"{service}/{method}"
        self._base = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        self._key = ("grpc", service, method)  # the values of _base, in the metrics' key order
        # The headers the propagators read (traceparent, tracestate, baggage by default), as
        # configured when the server starts (OTEL_PROPAGATORS).
        self._fields = frozenset(propagate.get_global_textmap().fields)

    def begin(self, context: grpc.aio.ServicerContext[Any, Any]) -> RpcSpan:
        metadata = context.invocation_metadata() or ()
        # No propagation header at all (a caller without tracing): a new root, as extract would
        # make, without running every propagator over the metadata.
        fields = self._fields
        parent = propagate.extract(metadata, getter=_GETTER) if any(k in fields for k, _ in metadata) else _ROOT
        self._in_flight.add(self._key)
        # start_span + attach rather than start_as_current_span: the same span made current,
        # without two generator-based context managers per call.
        span = self._tracer.start_span(self._name, context=parent, kind=SpanKind.SERVER, attributes=self._base)
        return RpcSpan(self, span, otel_context.attach(trace.set_span_in_context(span)), time.perf_counter())


class RpcSpan:
    __slots__ = ("_caller", "_of", "_span", "_start", "_token")

    def __init__(self, of: RpcSpans, span: trace.Span, token: object, start: float) -> None:
        self._of, self._span, self._token, self._start = of, span, token, start
        self._caller = "(unidentified)"

    def caller(self, name: str) -> None:
        """The admitted caller's configured name: on the span and in the RPC metrics."""
        self._caller = name
        self._span.set_attribute("smartpush.caller", name)

    def error(self, err: GatewayError) -> None:
        self._span.set_attribute("smartpush.error_reason", err.reason_name)
        if err.status_code is not None:
            self._span.set_attribute("smartpush.status_codes", [err.status_code])

    def end(self, code: grpc.StatusCode) -> None:
        of, span = self._of, self._span
        otel_context.detach(self._token)  # type: ignore[arg-type]
        number: int = code._value_[0]  # not `.value`: a Python property (edge.py, _OK)
        span.set_attribute("rpc.grpc.status_code", number)
        if code is not _OK:
            span.set_status(Status(StatusCode.ERROR, code._name_))
        span.end()
        of._in_flight.add(of._key, -1)
        of._duration.record(time.perf_counter() - self._start, (*of._key, number, self._caller), sampled_context(span))
