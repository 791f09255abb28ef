"""The current span, read without the API's layers.

`trace.get_current_span()` is four Python calls and an ABC `isinstance` (a Python call of its own)
before `get_span_context()`; the access log and every Send read it, with telemetry on and traces
sampled or not. The span types registered here keep their context in `_context` (what their
`get_span_context` returns): the API's NonRecordingSpan, and the gateway's FastSpan
(gateway.telemetry.fast_spans registers it). Any other value goes through the API as before.
Only the OpenTelemetry API is imported, and the module is outside gateway.telemetry (whose
import loads the SDK): the log module reads it in every process.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext
from opentelemetry.trace.propagation import _SPAN_KEY

_DIRECT: set[type] = {NonRecordingSpan}  # span types whose `_context` is their get_span_context()


def reads_context_directly(cls: type) -> None:
    """Registers a span type whose `_context` attribute is what its get_span_context() returns."""
    _DIRECT.add(cls)


def current_span() -> Span:
    """`trace.get_current_span()`."""
    span: Any = context_api.get_current().get(_SPAN_KEY)
    if type(span) in _DIRECT:
        return span  # type: ignore[no-any-return]
    return trace.get_current_span()


def current_span_context() -> SpanContext:
    """`trace.get_current_span().get_span_context()`."""
    span: Any = context_api.get_current().get(_SPAN_KEY)
    if type(span) in _DIRECT:
        return span._context  # type: ignore[no-any-return]
    return trace.get_current_span().get_span_context()
