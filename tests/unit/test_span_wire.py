"""The direct span encoder writes exactly what the SDK's OTLP encoder builds, span for span."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
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

from gateway.telemetry import span_wire
from gateway.telemetry.fast_spans import FastSpan, fast_tracer
from gateway.telemetry.span_wire import encode_trace_request


def _spans(fast: bool = False) -> tuple[ReadableSpan, ...]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "gw", "service.instance.id": "i-1"}, schema_url="https://x/1"),
        span_limits=SpanLimits(max_span_attributes=12, max_events=2, max_links=1),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("gateway", "1.2.3", schema_url="https://s/1", attributes={"scope.k": "v"})
    other = provider.get_tracer("other")
    if fast:  # the gateway's own span objects: the encoder reads their fields directly
        tracer, other = fast_tracer(tracer), fast_tracer(other)
    remote = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "opaque")]),
    )
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    # The SDK's encoder leaves a link's trace_state out (ours keeps it: see the last test).
    linked = SpanContext(remote.trace_id, remote.span_id, is_remote=True, trace_flags=TraceFlags(1))
    with tracer.start_as_current_span(
        "PushService/Send",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={
            "rpc.system": "grpc",
            "rpc.grpc.status_code": 0,
            "negative": -5,
            "big": 2**62,
            "ratio": 0.25,
            "ok": True,
            "no": False,
            "surfaces": ["COMPANION", "SBOL"],
            "codes": [1000, 1002],
            "flags": [True, False],
            "floats": [1.5, -2.0],
            "empty": "",
        },
        links=[Link(linked, {"link.k": 1}), Link(linked)],
    ) as server:
        server.add_event("first", {"e": "x"})
        server.add_event("second")
        server.add_event("third, dropped")
        for i in range(4):
            server.set_attribute(f"extra.{i}", i)  # beyond the limit: counted as dropped
        with tracer.start_as_current_span("smartpush.token") as token:
            token.set_attribute("smartpush.token.source", "cache")
        with other.start_as_current_span("POST", kind=SpanKind.CLIENT) as client:
            client.set_status(Status(StatusCode.ERROR, "HTTP 503"))
        with tracer.start_as_current_span("ok") as ok:
            ok.set_status(Status(StatusCode.OK))
    return exporter.get_finished_spans()


@pytest.mark.parametrize("fast", [False, True], ids=["sdk spans", "fast spans"])
def test_encoding_matches_the_sdk_encoder(fast: bool) -> None:
    spans = _spans(fast)
    assert all(isinstance(s, FastSpan) for s in spans) == fast
    ours = ExportTraceServiceRequest.FromString(encode_trace_request(spans))
    assert ours == encode_spans(spans)
    assert len(ours.resource_spans[0].scope_spans) == 2
    server = next(s for ss in ours.resource_spans[0].scope_spans for s in ss.spans if s.name == "PushService/Send")
    assert server.dropped_attributes_count > 0
    assert server.dropped_events_count == 1
    assert server.dropped_links_count == 1


@pytest.mark.parametrize("fast", [False, True], ids=["sdk spans", "fast spans"])
def test_bytes_are_the_sdk_bytes(fast: bool) -> None:
    spans = _spans(fast)
    assert encode_trace_request(spans) == encode_spans(spans).SerializeToString()


def test_attribute_cache_is_bounded_and_stays_correct() -> None:
    spans = _spans()
    expected = encode_spans(spans)
    span_wire._CACHES[9].clear()
    for i in range(span_wire._CACHE_LIMIT + 10):
        span_wire._attributes(9, {"smartpush.rq_uid": f"uid-{i}"})
    assert len(span_wire._CACHES[9]) <= span_wire._CACHE_LIMIT
    assert ExportTraceServiceRequest.FromString(encode_trace_request(spans)) == expected
    assert ExportTraceServiceRequest.FromString(encode_trace_request(spans)) == expected  # from the cache


def test_a_pair_in_the_resource_and_on_a_span_is_encoded_for_each() -> None:
    """One (key, value) in two places whose fields differ (a span's attributes are field 9, the
    resource's field 1): each cached apart. A shared cache wrote the span's tag into the resource."""
    provider = TracerProvider(resource=Resource.create({"service.name": "gw"}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span_wire._CACHES[9].clear()
    with provider.get_tracer("gateway").start_as_current_span("s", attributes={"service.name": "gw", "n": 1}):
        pass
    spans = exporter.get_finished_spans()
    assert encode_trace_request(spans) == encode_spans(spans).SerializeToString()
    assert encode_trace_request(spans) == encode_spans(spans).SerializeToString()  # from the caches


def test_a_links_trace_state_is_kept() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    remote = SpanContext(1, 2, is_remote=True, trace_state=TraceState([("vendor", "opaque")]))
    with provider.get_tracer("t").start_as_current_span("s", links=[Link(remote)]):
        pass
    ours = ExportTraceServiceRequest.FromString(encode_trace_request(exporter.get_finished_spans()))
    link = ours.resource_spans[0].scope_spans[0].spans[0].links[0]
    assert link.trace_state == "vendor=opaque"
    assert link.flags == 0x300


def test_grpc_exporter_sends_the_encoded_bytes_as_they_are() -> None:
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    from gateway.telemetry.exporters import FastGrpcSpanExporter

    received: list[bytes] = []

    def export(request: bytes, context: object) -> bytes:
        received.append(request)
        return ExportTraceServiceResponse().SerializeToString()

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},  # raw bytes in and out
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")  # the port it got: no window for another to take it
    server.start()
    try:
        spans = _spans()
        exporter = FastGrpcSpanExporter(endpoint=f"http://127.0.0.1:{port}", insecure=True)
        assert exporter.export(spans).name == "SUCCESS"
        exporter.shutdown()
    finally:
        server.stop(None)
    assert received == [encode_spans(spans).SerializeToString()]


def test_equal_numbers_of_different_types_are_encoded_each_as_itself() -> None:
    """True == 1 == 1.0 as dict keys, but a bool, an int and a double are different AnyValues."""
    provider = TracerProvider(resource=Resource.create({"service.name": "gw"}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("gateway")
    for value in (True, 1, 1.0, (1, 2), (True, False), (1.0, 2.0), ("a",)):
        with tracer.start_as_current_span("s", attributes={"v": value}):
            pass
    spans = exporter.get_finished_spans()
    for _ in range(2):  # the second time from the caches
        assert encode_trace_request(spans) == encode_spans(spans).SerializeToString()
