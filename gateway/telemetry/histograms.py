"""Explicit-bucket histograms aggregated by the gateway, handed to the SDK's metric readers.

The SDK's `Histogram.record` cleans and hashes the attribute mapping on every call (recursively,
then a sorted frozenset), which measured ~20 µs per sample; the two duration histograms of every
Send made it a large share of the telemetry cost. Here the caller passes a tuple key whose
attributes are known (`names`), the bucket is found by bisection, and the point is updated under
an uncontended lock. The readers (OTLP, Prometheus, in-memory) get these points beside the SDK's
own: `attach` wraps each reader's collect callback so the SDK's MetricsData is returned with
them merged into the gateway's scope — the role the specification gives a MetricProducer, which
opentelemetry-sdk 1.45.2 (pinned) does not offer. Temporality follows each reader's preference
(cumulative totals kept; delta as the difference from that reader's last collection); each bucket
keeps its latest sampled measurement as an exemplar, like the SDK's aligned-bucket reservoir.
(Exemplars and a delta point's min/max go to the reader that collects first: the gateway configures
one metric reader per temporality, never two delta ones.)
A test records the same samples through both and compares what the reader receives.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from time import time_ns
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics._internal.instrument import _Histogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanContext, TraceFlags
from opentelemetry.util.types import AttributeValue

from gateway.telemetry.fast_spans import FastSpan

# Past this many attribute sets, samples go to one overflow point (the SDK's default limit and
# attribute): a misbehaving label cannot grow the process without bound.
CARDINALITY_LIMIT = 2000
_OVERFLOW = ("__overflow__",)


class _Point:
    __slots__ = ("buckets", "count", "exemplars", "imax", "imin", "max", "min", "start", "sum")

    def __init__(self, size: int, start: int) -> None:
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.imin, self.imax = self.min, self.max  # since the last delta collection
        self.buckets = [0] * size
        self.exemplars: list[tuple[float, int, SpanContext] | None] = [None] * size
        self.start = start


class FastHistogram:
    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        names: tuple[str, ...],
        bounds: Sequence[float],
        enabled: bool = True,
    ) -> None:
        """`enabled` False: records nothing (telemetry off costs a call and a test)."""
        self._enabled = enabled
        self.name, self.unit, self.description = name, unit, description
        # OTEL_METRICS_EXEMPLAR_FILTER: always_off keeps none; otherwise sampled spans' (trace_based).
        self._exemplars = os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER", "").strip().lower() != "always_off"
        self._names = names
        self._bounds = tuple(float(b) for b in bounds)
        self._points: dict[tuple[AttributeValue, ...], _Point] = {}
        self._lock = threading.Lock()
        self._last: dict[int, dict[tuple[AttributeValue, ...], tuple[int, float, list[int]]]] = {}

    def record(self, value: float, key: tuple[AttributeValue, ...], sampled: SpanContext | None = None) -> None:
        """One sample for the attribute values `key` (in `names` order); `sampled`: the span
        context of a sampled span to keep as the bucket's exemplar."""
        if not self._enabled:
            return
        index = bisect.bisect_left(self._bounds, value)  # bucket i holds (bounds[i-1], bounds[i]]
        with self._lock:
            point = self._points.get(key)
            if point is None:
                if len(self._points) >= CARDINALITY_LIMIT:
                    key = _OVERFLOW
                    point = self._points.get(key)
                if point is None:
                    point = self._points[key] = _Point(len(self._bounds) + 1, time_ns())
            point.count += 1
            point.sum += value
            if value < point.min:
                point.min = value
            if value > point.max:
                point.max = value
            if value < point.imin:
                point.imin = value
            if value > point.imax:
                point.imax = value
            point.buckets[index] += 1
            if sampled is not None and self._exemplars:
                point.exemplars[index] = (value, time_ns(), sampled)

    def _attributes(self, key: tuple[AttributeValue, ...]) -> dict[str, AttributeValue]:
        if key == _OVERFLOW:
            return {"otel.metric.overflow": True}
        # None: an attribute this sample does not carry (e.g. error.type of an answered request).
        return {k: v for k, v in zip(self._names, key, strict=True) if v is not None}

    def collect(self, reader: MetricReader, now: int) -> Metric | None:
        delta = reader._instrument_class_temporality[_Histogram] == AggregationTemporality.DELTA
        with self._lock:
            snapshot = [
                (key, p.start, p.count, p.sum, p.imin if delta else p.min, p.imax if delta else p.max,
                 list(p.buckets), p.exemplars)
                for key, p in self._points.items()
            ]  # fmt: skip
            for p in self._points.values():
                p.exemplars = [None] * len(p.buckets)
                if delta:
                    p.imin, p.imax = float("inf"), float("-inf")
        if not snapshot:
            return None
        last = self._last.setdefault(id(reader), {})
        points = []
        for key, start, count, total, low, high, buckets, exemplars in snapshot:
            kept = [
                Exemplar({}, value, at, sampled.span_id, sampled.trace_id)
                for value, at, sampled in (e for e in exemplars if e is not None)
            ]
            if delta:
                before = last.get(key)
                last[key] = (now, total, buckets)
                if before is not None:
                    start = before[0]
                    count -= sum(before[2])
                    total -= before[1]
                    buckets = [b - a for a, b in zip(before[2], buckets, strict=True)]
                if count == 0:
                    continue
            points.append(
                HistogramDataPoint(
                    attributes=self._attributes(key), start_time_unix_nano=start, time_unix_nano=now,
                    count=count, sum=total, bucket_counts=buckets, explicit_bounds=list(self._bounds),
                    min=low, max=high, exemplars=kept,
                )
            )  # fmt: skip
        if not points:
            return None
        temporality = AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
        return Metric(self.name, self.description, self.unit, Histogram(points, temporality))


def sampled_context(span: Span) -> SpanContext | None:
    """The span's context when it is sampled (a sample's exemplar may point at it), else None."""
    ctx = span._context if type(span) is FastSpan else span.get_span_context()
    return ctx if ctx is not None and ctx[3] & TraceFlags.SAMPLED else None  # trace_flags, by index


def attach(meter_provider: MeterProvider, scope: InstrumentationScope, histograms: Sequence[FastHistogram]) -> None:
    """Every reader of `meter_provider` (an SDK one) collects `histograms` with the SDK's metrics."""
    if not isinstance(meter_provider, SdkMeterProvider):
        return
    for reader in meter_provider._metric_readers:  # this provider's own (_all_metric_readers: every one)
        sdk_collect = reader._collect
        if sdk_collect is None:
            continue
        # (The SDK annotates the callback's result as metrics; it is the MetricsData this returns.)
        reader._set_collect_callback(_merged(sdk_collect, meter_provider, scope, histograms))  # type: ignore[arg-type]


def _merged(
    sdk_collect: Any,
    provider: SdkMeterProvider,
    scope: InstrumentationScope,
    histograms: Sequence[FastHistogram],
) -> Callable[..., MetricsData | None]:
    def collect(reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
        data: MetricsData | None = sdk_collect(reader, timeout_millis)
        now = time_ns()
        ours = [m for m in (h.collect(reader, now) for h in histograms) if m is not None]
        if not ours:
            return data
        if data is None or not data.resource_metrics:
            resource = provider._sdk_config.resource
            return MetricsData([ResourceMetrics(resource, [ScopeMetrics(scope, ours, "")], resource.schema_url)])
        first, *rest = data.resource_metrics
        scopes = list(first.scope_metrics)
        for i, sm in enumerate(scopes):
            if sm.scope.name == scope.name:
                scopes[i] = replace(sm, metrics=[*sm.metrics, *ours])
                break
        else:
            scopes.append(ScopeMetrics(scope, ours, ""))
        return MetricsData([replace(first, scope_metrics=scopes), *rest])

    return collect
