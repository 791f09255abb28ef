"""A span's context into an outgoing request's headers: what `propagate.inject` writes for it.

Under the default propagators (W3C trace context, then W3C baggage: OTEL_PROPAGATORS unset or
naming those) the traceparent is formatted here, and baggage asked for only when the context
carries some; `propagate.inject` ran a composite, a getter per propagator and a context copy per
call for the same headers. Any other propagator set goes through `propagate.inject` itself.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from opentelemetry import context as context_api
from opentelemetry import propagate, trace
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import INVALID_SPAN_CONTEXT, Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def _w3c_only(textmap: TextMapPropagator) -> tuple[bool, W3CBaggagePropagator | None] | None:
    """(trace context first?, the baggage propagator) when `textmap` is made of the W3C two."""
    found = textmap._propagators if type(textmap) is CompositePropagator else [textmap]
    kinds = [type(p) for p in found]
    if kinds not in (
        [TraceContextTextMapPropagator, W3CBaggagePropagator],
        [TraceContextTextMapPropagator],
        [W3CBaggagePropagator],
    ):
        return None
    baggage = next((p for p in found if type(p) is W3CBaggagePropagator), None)
    return kinds[0] is TraceContextTextMapPropagator, baggage


class SpanInjector:
    """`inject(headers, span)`: the headers `propagate.inject(headers, set_span_in_context(span))`
    writes, for the global propagators as they are at the call."""

    def __init__(self) -> None:
        # (the propagators last seen, what _w3c_only said of them): one tuple, swapped whole.
        self._last: tuple[TextMapPropagator | None, tuple[bool, W3CBaggagePropagator | None] | None] = (None, None)

    def __call__(self, headers: MutableMapping[str, str], span: Span) -> None:
        textmap = propagate.get_global_textmap()
        last = self._last
        if textmap is not last[0]:
            last = self._last = (textmap, _w3c_only(textmap))
        w3c = last[1]
        if w3c is None:
            propagate.inject(headers, context=trace.set_span_in_context(span))
            return
        traceparent, baggage = w3c
        if traceparent:
            ctx = span.get_span_context()
            if ctx != INVALID_SPAN_CONTEXT:  # TraceContextTextMapPropagator.inject's own test
                # (trace_id, span_id, is_remote, trace_flags, trace_state): by index, no property calls
                headers["traceparent"] = f"00-{ctx[0]:032x}-{ctx[1]:016x}-{ctx[3]:02x}"
                if ctx[4]:
                    headers["tracestate"] = ctx[4].to_header()
        # The span's context keeps the current context's other values: its baggage among them.
        if baggage is not None and context_api.get_current().get(_BAGGAGE_KEY):
            baggage.inject(headers)


inject_span = SpanInjector()
