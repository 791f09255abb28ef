"""FastSpan records what the SDK's span records: the same spans through both tracers encode to the
same OTLP bytes (the SDK's encoder and ours), and read the same through every ReadableSpan field."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    ParentBasedTraceIdRatio,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from gateway.telemetry.fast_spans import FastSpan, FastTracer, fast_tracer
from gateway.telemetry.span_wire import encode_trace_request


class _Counting(IdGenerator):
    def __init__(self) -> None:
        self._n = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self._n)

    def generate_trace_id(self) -> int:
        return 0xABC0000 + next(self._n)


def _record(fast: bool, limits: SpanLimits | None = None, sampler: Any = None) -> tuple[ReadableSpan, ...]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "gw"}),
        span_limits=limits or SpanLimits(max_span_attributes=6, max_span_attribute_length=8, max_events=2),
        id_generator=_Counting(),
        sampler=sampler,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("gateway", "1.2.3")
    if fast:
        tracer = fast_tracer(tracer)
        assert isinstance(tracer, FastTracer)
    remote = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                         trace_flags=TraceFlags(1))  # fmt: skip
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    server = tracer.start_span(
        "PushService/Send", context=parent, kind=SpanKind.SERVER, start_time=1_000,
        attributes={"rpc.system": "grpc", "rpc.method": "Send", "codes": [1000, 1002]},
        links=[Link(remote, {"link.k": 1})],
    )  # fmt: skip
    token = otel_context.attach(trace.set_span_in_context(server))
    try:
        server.set_attribute("smartpush.caller", "a caller name longer than the limit")
        server.set_attributes({"smartpush.surfaces": ["COMPANION", "SBOL"], "ok": True, "ratio": 0.5})
        server.set_attribute("rpc.system", "grpc")  # set again: moves to the end, as in the SDK
        server.set_attribute("over.1", 1)  # past max_span_attributes: the oldest goes, counted as dropped
        server.set_attribute("over.2", ("x", "a value past the length limit"))
        server.add_event("first", {"e": "x"}, timestamp=1_500)
        server.add_link(remote, {"added": "later"})
        client = tracer.start_span(
            "POST", kind=SpanKind.CLIENT, start_time=2_000, attributes={"url.full": "http://h/p"}
        )
        client.set_attribute("http.response.status_code", 503)
        client.set_status(Status(StatusCode.ERROR, "HTTP 503"))
        client.end(end_time=3_000)
        server.set_status(Status(StatusCode.ERROR, "UNAVAILABLE"))
    finally:
        otel_context.detach(token)
    server.end(end_time=4_000)
    server.set_attribute("after.end", 1)  # refused on an ended span, in both
    return exporter.get_finished_spans()


def test_same_otlp_bytes_as_the_sdk_span() -> None:
    sdk, fast = _record(fast=False), _record(fast=True)
    assert all(isinstance(s, FastSpan) for s in fast)
    assert encode_spans(fast).SerializeToString() == encode_spans(sdk).SerializeToString()
    assert encode_trace_request(fast) == encode_trace_request(sdk)
    # The limits did apply (and identically): dropped counted, strings cut, sequences tupled.
    server = next(s for s in fast if s.name == "PushService/Send")
    assert server.dropped_attributes == next(s for s in sdk if s.name == server.name).dropped_attributes > 0
    assert (next(s for s in fast if s.name == "POST").attributes or {})["url.full"] == "http://h"
    assert (server.attributes or {})["over.2"] == ("x", "a value ")
    assert list(server.attributes or {})[-3:] == ["rpc.system", "over.1", "over.2"]
    # Without limits (the gateway's configuration): sequences stored as tuples on the fast path.
    unlimited = SpanLimits(max_span_attributes=128)
    sdk, fast = _record(fast=False, limits=unlimited), _record(fast=True, limits=unlimited)
    assert encode_spans(fast).SerializeToString() == encode_spans(sdk).SerializeToString()
    assert [dict(s.attributes or {}) for s in fast] == [dict(s.attributes or {}) for s in sdk]


def _fields(s: ReadableSpan) -> tuple[Any, ...]:
    events = [(e.name, e.timestamp, dict(e.attributes or {})) for e in s.events]
    links = [(link.context, dict(link.attributes or {})) for link in s.links]
    status = (s.status.status_code, s.status.description)
    return events, links, s.parent, status, s.kind, s.dropped_events, s.dropped_links, s.instrumentation_scope


@pytest.mark.parametrize("read", [lambda s: s.to_json(), _fields])
def test_every_readable_field_reads_the_same(read: Callable[[ReadableSpan], Any]) -> None:
    sdk, fast = _record(fast=False), _record(fast=True)
    for a, b in zip(sdk, fast, strict=True):
        left, right = read(a), read(b)
        if isinstance(left, str):
            left, right = json.loads(left), json.loads(right)
        assert left == right


def test_the_sampler_decides_as_in_the_sdk() -> None:
    # Dropped by the sampler: no span object at all, in both; a sampled parent still decides for a child.
    assert _record(fast=True, sampler=ALWAYS_OFF) == () == _record(fast=False, sampler=ALWAYS_OFF)
    ratio = ParentBased(TraceIdRatioBased(0.0))
    assert [s.name for s in _record(fast=True, sampler=ratio)] == [s.name for s in _record(fast=False, sampler=ratio)]


def test_other_tracers_are_left_alone() -> None:
    noop = trace.NoOpTracer()
    assert fast_tracer(noop) is noop


def test_the_providers_later_changes_reach_the_fast_tracer() -> None:
    from opentelemetry.sdk.trace import _disable_tracer_configurator

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gw"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = fast_tracer(provider.get_tracer("gateway"))
    provider._update_resource(Resource({"process.pid": 4242}))  # what the SDK does after a fork
    tracer.start_span("after the fork").end()
    assert exporter.get_finished_spans()[0].resource.attributes["process.pid"] == 4242
    provider._set_tracer_configurator(tracer_configurator=_disable_tracer_configurator)
    assert not tracer.start_span("disabled").is_recording()


def _default_path(
    fast: bool, parent: SpanContext | None, extra: Any = None, sampler: Any = None
) -> tuple[list[Any], list[Any]]:
    """The gateway's usual configuration: the SDK's default sampler and random ids, batching to an
    exporter (`extra`, another processor, when given). Random is seeded so both tracers draw the
    same ids, in the same order; returns the exported spans and every started span's context."""
    random.seed(20261123)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gw"}), sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if extra is not None:
        provider.add_span_processor(extra)
    tracer = provider.get_tracer("gateway", "1.2.3")
    if fast:
        tracer = fast_tracer(tracer)
        assert isinstance(tracer, FastTracer)
        assert tracer._lean
    context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None
    started = []
    server = tracer.start_span(
        "PushService/Send", context=context, kind=SpanKind.SERVER, attributes={"a": 1}, start_time=1_000
    )
    started.append(server.get_span_context())
    token = otel_context.attach(trace.set_span_in_context(server))
    try:
        client = tracer.start_span(
            "POST", kind=SpanKind.CLIENT, attributes={"url.full": "http://h/p"}, start_time=2_000
        )
        started.append(client.get_span_context())
        client.end(end_time=3_000)
    finally:
        otel_context.detach(token)
    server.end(end_time=4_000)
    provider.force_flush()
    provider.shutdown()
    return exporter.get_finished_spans(), started  # type: ignore[return-value]


STATE = TraceState([("vendor", "v1")])
RANDOM_SAMPLED = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
PARENTS = {
    "root": None,
    "sampled remote parent with trace state": SpanContext(7, 8, True, TraceFlags(1), STATE),
    "random-id remote parent": SpanContext(7, 8, True, RANDOM_SAMPLED),
    "unsampled remote parent": SpanContext(7, 8, True, TraceFlags(0), STATE),
}


# The samplers OTEL_TRACES_SAMPLER names (None: the SDK's default, parentbased_always_on), every
# one decided on the fast tracer's lean path.
SAMPLERS = {
    "parentbased_always_on": None,
    "always_on": ALWAYS_ON,
    "always_off": ALWAYS_OFF,
    "parentbased_always_off": ParentBased(ALWAYS_OFF),
    "traceidratio": TraceIdRatioBased(0.5),
    "parentbased_traceidratio": ParentBasedTraceIdRatio(0.5),  # (the class OTEL_TRACES_SAMPLER makes)
    "parentbased(traceidratio)": ParentBased(TraceIdRatioBased(0.5)),
}


@pytest.mark.parametrize("sampler", SAMPLERS.values(), ids=SAMPLERS.keys())
@pytest.mark.parametrize("parent", PARENTS.values(), ids=PARENTS.keys())
def test_the_default_configuration_path_decides_and_exports_as_the_sdk(
    parent: SpanContext | None, sampler: Any
) -> None:
    sdk, sdk_started = _default_path(False, parent, sampler=sampler)
    fast, fast_started = _default_path(True, parent, sampler=sampler)
    assert fast_started == sdk_started  # ids, flags and trace state, sampled or dropped
    assert [s.get_span_context().trace_state for s in fast] == [s.get_span_context().trace_state for s in sdk]
    assert encode_spans(fast).SerializeToString() == encode_spans(sdk).SerializeToString()
    assert [s.name for s in fast] == [s.name for s in sdk]


@pytest.mark.parametrize("parent_based", [False, True], ids=["traceidratio", "parentbased_traceidratio"])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 1.0])
def test_a_ratio_sampler_decides_each_trace_as_in_the_sdk(rate: float, parent_based: bool) -> None:
    """Many roots and children of remote parents (sampled and not), through both tracers from the
    same seed: the same decisions, flags and ids, and at 0.1 and 0.5 both outcomes occur among
    the roots."""
    sampler = ParentBasedTraceIdRatio(rate) if parent_based else TraceIdRatioBased(rate)

    def started(fast: bool) -> list[SpanContext]:
        random.seed(rate)
        provider = TracerProvider(sampler=sampler)
        tracer = provider.get_tracer("gateway")
        if fast:
            tracer = fast_tracer(tracer)
            assert isinstance(tracer, FastTracer)
            assert tracer._lean
        out = []
        for n in range(300):
            flags = TraceFlags(n % 2)  # odd: a sampled parent
            parent = SpanContext(random.getrandbits(128), 8, True, flags) if n % 3 == 0 else None
            context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None
            span = tracer.start_span("PushService/Send", context=context, kind=SpanKind.SERVER)
            out.append(span.get_span_context())
            span.end()
        return out

    fast, sdk = started(True), started(False)
    assert fast == sdk
    roots = {c.trace_flags.sampled for n, c in enumerate(fast) if n % 3}
    assert roots == ({False, True} if 0 < rate < 1 else {rate == 1.0})


def test_another_processor_beside_the_batching_one_still_sees_every_span() -> None:
    seen: list[str] = []

    class Watching(SimpleSpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            seen.append(f"start {span.name}")

        def on_end(self, span: ReadableSpan) -> None:
            seen.append(f"end {span.name}")

    exported, _ = _default_path(True, None, extra=Watching(InMemorySpanExporter()))
    assert seen == ["start PushService/Send", "start POST", "end POST", "end PushService/Send"]
    assert [s.name for s in exported] == ["POST", "PushService/Send"]


def test_a_full_or_shut_queue_refuses_as_the_sdk_does() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    processor = BatchSpanProcessor(exporter, max_queue_size=2, max_export_batch_size=2, schedule_delay_millis=60_000)
    provider.add_span_processor(processor)
    tracer = fast_tracer(provider.get_tracer("gateway"))
    for n in range(5):
        tracer.start_span(f"s{n}").end()  # the worker wakes at 2; the queue never holds more than 2
    provider.force_flush()
    assert 2 <= len(exporter.get_finished_spans()) <= 5
    provider.shutdown()
    before = len(exporter.get_finished_spans())
    tracer.start_span("after shutdown").end()  # refused (the SDK's warning), never exported
    assert len(exporter.get_finished_spans()) == before
