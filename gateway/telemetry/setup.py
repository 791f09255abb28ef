"""Tracer and meter providers from the standard OTEL_* variables, and the gateway's instruments.

OTLP export (gRPC or HTTP/protobuf, per OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]PROTOCOL) when an
OTLP endpoint is set; a console exporter behind a setting; an optional Prometheus scrape
endpoint; nothing otherwise, in which case the tracer and meter are no-ops and cost nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from gateway import __version__
from gateway.config import TelemetrySettings
from gateway.telemetry.fast_spans import fast_tracer
from gateway.telemetry.histograms import FastHistogram, attach
from gateway.telemetry.http_spans import UPSTREAM_KEY
from gateway.telemetry.policy import SubHasher
from gateway.telemetry.tally import Tally

log = logging.getLogger(__name__)
SCOPE = "smartpush-gateway"
# rpc.server.call.duration's attributes, in the order of the keys server_spans.RpcSpan records.
RPC_KEY = ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code", "smartpush.caller")
# Histogram buckets in seconds (OpenTelemetry semantic conventions): loopback calls take well under
# a millisecond, SmartPush tens to hundreds.
DURATION_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass
class Telemetry:
    tracer: trace.Tracer
    meter: metrics.Meter
    hash_sub: SubHasher
    enabled: bool = False
    _shutdown: list[Any] = field(default_factory=list)
    _histograms: list[FastHistogram] = field(default_factory=list)

    def __post_init__(self) -> None:
        m = self.meter
        # The two duration histograms recorded on every call are aggregated here (histograms.py).
        self.rpc_duration = self._histogram(
            "rpc.server.call.duration", "s", "Duration of inbound RPCs",
            RPC_KEY,
        )  # fmt: skip
        # In-flight RPCs and results are counted in plain dicts and observed at collection (tally.py).
        self.in_flight = Tally(("rpc.system", "rpc.service", "rpc.method"))
        m.create_observable_up_down_counter(
            "rpc.server.active_requests", [self.in_flight.observe], unit="{request}", description="RPCs in flight"
        )
        self.upstream_duration = self._histogram(
            "http.client.request.duration", "s", "Duration of each HTTP request to SmartPush", UPSTREAM_KEY
        )
        self.results = Tally(("smartpush.status_code", "smartpush.surface"))
        m.create_observable_counter(
            "smartpush.results", [self.results.observe], unit="{destination}",
            description="SmartPush results by status code and surface",
        )  # fmt: skip
        self.token_refreshes = m.create_counter(
            "smartpush.token.refreshes", unit="{refresh}", description="Token requests by outcome"
        )
        self.retries = m.create_counter("smartpush.retries", unit="{retry}", description="Upstream retries by reason")
        self.validation_failures = m.create_counter(
            "smartpush.validation.failures", unit="{violation}", description="Rejected fields, by field path"
        )
        self.batch_size = m.create_histogram(
            "smartpush.batch.size", unit="{request}", description="Requests per SendBatch call",
            explicit_bucket_boundaries_advisory=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
        )  # fmt: skip
        self.callbacks = m.create_counter(
            "smartpush.callbacks", unit="{callback}", description="Delivery-status callbacks received, by outcome"
        )
        self.delivery_delay = m.create_histogram(
            "smartpush.delivery.status_delay", unit="s",
            description="Time from a send to each new delivery status SmartPush reports for it",
            explicit_bucket_boundaries_advisory=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 86400),
        )  # fmt: skip
        self.refusals = m.create_counter(
            "smartpush.refusals", unit="{call}", description="Calls answered with an error, by reason and caller"
        )

    def observe_state_files(self, sizes: Callable[[], dict[str, int]]) -> None:
        """The embedded state store's files, by size (`sizes` is read at each collection)."""

        def observe(_: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
            return [metrics.Observation(size, {"smartpush.state.file": name}) for name, size in sizes().items()]

        self.meter.create_observable_gauge(
            "smartpush.state.file.size", [observe], unit="By",
            description="Size of the SQLite state store's files (database, WAL) on disk",
        )  # fmt: skip

    def _histogram(self, name: str, unit: str, description: str, names: tuple[str, ...]) -> FastHistogram:
        histogram = FastHistogram(name, unit, description, names, DURATION_BUCKETS_S, enabled=self.enabled)
        self._histograms.append(histogram)
        return histogram

    @classmethod
    def disabled(cls) -> Telemetry:
        return cls(trace.NoOpTracer(), metrics.NoOpMeter(SCOPE), SubHasher())

    @classmethod
    def from_providers(
        cls, tracer_provider: trace.TracerProvider, meter_provider: metrics.MeterProvider, salt: str | None = None
    ) -> Telemetry:
        t = cls(
            fast_tracer(tracer_provider.get_tracer(SCOPE, __version__)),
            meter_provider.get_meter(SCOPE, __version__),
            SubHasher(salt),
            enabled=True,
            _shutdown=[tracer_provider, meter_provider],
        )
        attach(meter_provider, InstrumentationScope(SCOPE, __version__), t._histograms)
        return t

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Flush and stop exporters (on SIGTERM, after the server drained), for at most timeout_s.

        An unreachable collector makes the SDK exporters retry with backoff; a pod must not
        outlive its termination grace waiting on them, so what is not out by then is dropped.
        """

        def flush() -> None:
            for provider in self._shutdown:
                provider.shutdown()

        worker = threading.Thread(target=flush, name="telemetry-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            log.warning("telemetry flush did not finish in time; dropping the rest", extra={"timeout_s": timeout_s})


def _protocol(signal: str) -> str:
    return (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"  # the specification's default
    ).strip()


def _otlp_configured(signal: str) -> bool:
    if os.environ.get(f"OTEL_{signal}_EXPORTER", "otlp").strip() == "none":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    )


def _span_exporter() -> SpanExporter:
    from gateway.telemetry.exporters import FastGrpcSpanExporter, FastHttpSpanExporter

    return FastGrpcSpanExporter() if _protocol("TRACES") == "grpc" else FastHttpSpanExporter()


def _metric_exporter() -> Any:
    if _protocol("METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # type: ignore[assignment]
    return OTLPMetricExporter()


def build_telemetry(settings: TelemetrySettings) -> Telemetry:
    """Providers from OTEL_* and settings; a no-op Telemetry when nothing would be exported."""
    tracing = _otlp_configured("TRACES") or settings.console
    metering = _otlp_configured("METRICS") or settings.console or bool(settings.prometheus_listen)
    if not (tracing or metering):
        return Telemetry.disabled()
    salt = settings.sub_hash_salt.get_secret_value() if settings.sub_hash_salt else None
    attributes: dict[str, str] = {
        "service.name": os.environ.get("OTEL_SERVICE_NAME", SCOPE),
        "service.version": __version__,
    }
    if "service.instance.id" not in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        # Each process (and each `--workers` worker) reports its own cumulative metrics; a shared
        # identity would make a collector merge them into one wrong series.
        attributes["service.instance.id"] = str(uuid.uuid4())
    resource = Resource.create(attributes)
    tracer_provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER[_ARG]
    if _otlp_configured("TRACES"):
        tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter()))
    readers: list[MetricReader] = []
    if _otlp_configured("METRICS"):
        readers.append(PeriodicExportingMetricReader(_metric_exporter()))
    if settings.console:
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    if settings.prometheus_listen:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        host, _, port = settings.prometheus_listen.rpartition(":")
        start_http_server(int(port), addr=host or "0.0.0.0")
        readers.append(PrometheusMetricReader())
        log.info("Prometheus metrics served", extra={"listen": settings.prometheus_listen})
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    return Telemetry.from_providers(tracer_provider, meter_provider, salt)
