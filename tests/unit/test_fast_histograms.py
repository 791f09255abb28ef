"""The gateway's histograms reach every reader as the SDK's own histogram would: same buckets,
counts, sums, bounds and attributes, both temporalities, exemplars, a bounded point set."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags

from gateway.telemetry import Telemetry, histograms
from gateway.telemetry.setup import DURATION_BUCKETS_S

NAMES = ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code", "smartpush.caller")
SAMPLES = [(v, ("grpc", "svc", "Send", code, caller)) for v, code, caller in (
    (0.0004, 0, "a"), (0.0005, 0, "a"), (0.0011, 0, "a"), (0.3, 14, "a"), (12.0, 0, "b"), (0.02, 0, "b"),
)]  # fmt: skip


def _points(data: MetricsData | None, name: str) -> dict[tuple[Any, ...], Any]:
    assert data is not None
    out = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    for p in m.data.data_points:
                        out[tuple(sorted((p.attributes or {}).items()))] = p
    return out


Both = tuple[InMemoryMetricReader, InMemoryMetricReader, Telemetry, Callable[[float, tuple[Any, ...]], None]]


def _sdk_and_ours(temporality: AggregationTemporality) -> Both:
    """Readers of an SDK histogram and of the gateway's, and a `record` into both."""
    prefs: dict[type, AggregationTemporality] = {Histogram: temporality}
    sdk_reader, our_reader = InMemoryMetricReader(prefs), InMemoryMetricReader(prefs)
    sdk = (
        MeterProvider(metric_readers=[sdk_reader])
        .get_meter("x")
        .create_histogram("rpc.server.call.duration", unit="s", explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S)
    )
    t = Telemetry.from_providers(TracerProvider(), MeterProvider(metric_readers=[our_reader]))

    def record(value: float, key: tuple[Any, ...]) -> None:
        sdk.record(value, dict(zip(NAMES, key, strict=True)))
        t.rpc_duration.record(value, key)

    for value, key in SAMPLES:
        record(value, key)
    return sdk_reader, our_reader, t, record


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA])
def test_points_match_the_sdk_histogram(temporality: AggregationTemporality) -> None:
    sdk_reader, our_reader, _, record = _sdk_and_ours(temporality)
    for _ in range(2):  # the second round: cumulative totals grow, delta holds only the new sample
        theirs = _points(sdk_reader.get_metrics_data(), "rpc.server.call.duration")
        data = our_reader.get_metrics_data()
        ours = _points(data, "rpc.server.call.duration")
        assert ours.keys() == theirs.keys()
        for key, p in ours.items():
            q = theirs[key]
            assert (p.count, p.sum, p.min, p.max, list(p.bucket_counts), list(p.explicit_bounds)) == (
                q.count, q.sum, q.min, q.max, list(q.bucket_counts), list(q.explicit_bounds),
            )  # fmt: skip
        assert data is not None
        assert encode_metrics(data)  # the OTLP encoder takes it
        metric = next(m for sm in data.resource_metrics[0].scope_metrics for m in sm.metrics)
        assert metric.data.aggregation_temporality == temporality  # type: ignore[union-attr]
        record(0.003, SAMPLES[0][1])


def test_delta_reports_only_what_is_new() -> None:
    _, reader, t, _ = _sdk_and_ours(AggregationTemporality.DELTA)
    first = _points(reader.get_metrics_data(), "rpc.server.call.duration")
    assert sum(p.count for p in first.values()) == len(SAMPLES)
    t.rpc_duration.record(0.003, SAMPLES[0][1])
    second = _points(reader.get_metrics_data(), "rpc.server.call.duration")
    assert [(p.count, p.sum, p.min, p.max) for p in second.values()] == [(1, 0.003, 0.003, 0.003)]
    assert reader.get_metrics_data() is None or not _points(reader.get_metrics_data(), "rpc.server.call.duration")


def test_exemplars_point_at_sampled_spans() -> None:
    reader = InMemoryMetricReader()
    t = Telemetry.from_providers(TracerProvider(), MeterProvider(metric_readers=[reader]))
    sampled = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))
    t.rpc_duration.record(0.002, SAMPLES[0][1], sampled)
    t.rpc_duration.record(0.0001, SAMPLES[0][1])
    (point,) = _points(reader.get_metrics_data(), "rpc.server.call.duration").values()
    assert [(e.value, e.trace_id, e.span_id) for e in point.exemplars] == [(0.002, 0xABC, 0xDEF)]
    (point,) = _points(reader.get_metrics_data(), "rpc.server.call.duration").values()
    assert point.exemplars == []  # kept until collected, like the SDK's reservoir


def test_point_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(histograms, "CARDINALITY_LIMIT", 10)
    reader = InMemoryMetricReader()
    t = Telemetry.from_providers(TracerProvider(), MeterProvider(metric_readers=[reader]))
    for i in range(50):
        t.rpc_duration.record(random.random(), ("grpc", "svc", "Send", 0, f"caller-{i}"))
    points = _points(reader.get_metrics_data(), "rpc.server.call.duration")
    assert len(points) == 11
    assert points[(("otel.metric.overflow", True),)].count == 40


def test_disabled_telemetry_keeps_nothing() -> None:
    t = Telemetry.disabled()
    t.rpc_duration.record(0.1, SAMPLES[0][1])
    assert t.rpc_duration._points == {}


def test_prometheus_exposition_has_the_histogram() -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import REGISTRY, generate_latest

    provider = MeterProvider(metric_readers=[PrometheusMetricReader()], shutdown_on_exit=False)
    try:
        t = Telemetry.from_providers(TracerProvider(), provider)
        t.rpc_duration.record(0.002, SAMPLES[0][1])
        text = generate_latest(REGISTRY).decode()
    finally:
        provider.shutdown()  # takes its collector out of the global registry
    line = next(x for x in text.splitlines() if x.startswith("rpc_server_call_duration_seconds_count"))
    assert 'smartpush_caller="a"' in line
    assert line.endswith(" 1.0")
