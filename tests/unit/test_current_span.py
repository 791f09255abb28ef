"""The current span read directly is the one the API reads, whatever the context holds."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY

from gateway.current_span import current_span, current_span_context
from gateway.telemetry.fast_spans import FastSpan, fast_tracer

_PROVIDER = TracerProvider()


def _held() -> dict[str, Any]:
    return {
        "nothing": None,
        "a non-recording span": NonRecordingSpan(SpanContext(7, 8, True, TraceFlags(1))),
        "the gateway's span": fast_tracer(_PROVIDER.get_tracer("gateway")).start_span("fast"),
        "the SDK's span": _PROVIDER.get_tracer("sdk").start_span("sdk"),
        "not a span": "junk",  # the API answers INVALID_SPAN
    }


@pytest.mark.parametrize("what", list(_held()))
def test_it_reads_what_the_api_reads(what: str) -> None:
    value = _held()[what]
    token = otel_context.attach(otel_context.set_value(_SPAN_KEY, value))
    try:
        assert current_span() is trace.get_current_span()
        assert current_span_context() == trace.get_current_span().get_span_context()
    finally:
        otel_context.detach(token)
    if what == "the gateway's span":
        assert type(value) is FastSpan  # read directly, not through the API's fallback
