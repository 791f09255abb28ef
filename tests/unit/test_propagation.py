"""The span injector writes what `propagate.inject` writes, under every propagator set."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.telemetry.fast_spans import fast_tracer
from gateway.telemetry.propagation import SpanInjector


class _Vendor(TextMapPropagator):
    """A propagator of another kind: the injector must hand such sets to propagate.inject."""

    def extract(self, carrier, context=None, getter=None):  # type: ignore[no-untyped-def]
        return context

    def inject(self, carrier, context=None, setter=None):  # type: ignore[no-untyped-def]
        carrier["x-vendor-trace"] = format(trace.get_current_span(context).get_span_context().span_id, "x")

    @property
    def fields(self) -> set[str]:
        return {"x-vendor-trace"}


SETS = {
    "default": CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]),
    "tracecontext": TraceContextTextMapPropagator(),
    "baggage first": CompositePropagator([W3CBaggagePropagator(), TraceContextTextMapPropagator()]),
    "baggage": CompositePropagator([W3CBaggagePropagator()]),
    "another kind": CompositePropagator([TraceContextTextMapPropagator(), _Vendor()]),
}
SPANS = {
    "sampled": SpanContext(0xABC, 0xDEF, False, TraceFlags(1)),
    "with trace state": SpanContext(0xABC, 0xDEF, False, TraceFlags(3), TraceState([("v", "1"), ("w", "2")])),
    "unsampled": SpanContext(0xABC, 0xDEF, False, TraceFlags(0)),
    "invalid": SpanContext(0, 0, False, TraceFlags(0)),
}


@pytest.fixture
def restore_textmap() -> Iterator[None]:
    saved = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(saved)


@pytest.mark.usefixtures("restore_textmap")
@pytest.mark.parametrize("with_baggage", [False, True], ids=["no baggage", "baggage"])
@pytest.mark.parametrize("span_context", SPANS.values(), ids=SPANS.keys())
@pytest.mark.parametrize("textmap", SETS.values(), ids=SETS.keys())
def test_the_same_headers_as_propagate_inject(
    textmap: TextMapPropagator, span_context: SpanContext, with_baggage: bool
) -> None:
    propagate.set_global_textmap(textmap)
    inject = SpanInjector()
    span = NonRecordingSpan(span_context)
    token = (
        otel_context.attach(baggage.set_baggage("tenant", "a b", baggage.set_baggage("k", "v")))
        if with_baggage
        else None
    )
    try:
        expected = {"Authorization": "Bearer t"}
        propagate.inject(expected, context=trace.set_span_in_context(span))
        headers = {"Authorization": "Bearer t"}
        inject(headers, span)
    finally:
        if token is not None:
            otel_context.detach(token)
    assert list(headers.items()) == list(expected.items())


@pytest.mark.usefixtures("restore_textmap")
def test_a_changed_propagator_set_is_followed() -> None:
    inject = SpanInjector()
    span = fast_tracer(TracerProvider().get_tracer("t")).start_span("POST")
    propagate.set_global_textmap(SETS["default"])
    first: dict[str, str] = {}
    inject(first, span)
    propagate.set_global_textmap(SETS["another kind"])
    second: dict[str, str] = {}
    inject(second, span)
    assert "traceparent" in first
    assert "x-vendor-trace" not in first
    assert second["x-vendor-trace"] == format(span.get_span_context().span_id, "x")
