"""The OTLP span exporters (gRPC and HTTP/protobuf) with the span encoding of span_wire.

Everything else (endpoints, headers, TLS, compression, retries, size limit, self-metrics) is
the SDK exporters' own, configured by the standard OTEL_EXPORTER_OTLP_* variables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._common import _is_request_too_large
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from gateway.telemetry.span_wire import encode_trace_request


class _RawTraceStub:
    """TraceService.Export taking the request's wire bytes as they are (no serializer)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


class FastGrpcSpanExporter(GrpcSpanExporter):
    """The SDK's gRPC exporter (endpoint, TLS, headers, compression, retries, reconnects) sending
    span_wire's bytes as the request: parsing them into a message only for grpc to serialize it
    again was half of the export thread's instructions per span (callgrind)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stub = _RawTraceStub  # also what a reconnect builds its client from
        self._client = _RawTraceStub(self._channel)  # type: ignore[assignment, arg-type]

    def _translate_data(self, data: Sequence[ReadableSpan]) -> Any:
        return encode_trace_request(data)


class FastHttpSpanExporter(HttpSpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # The SDK's export with the encoding swapped (opentelemetry-exporter-otlp-proto-http 1.45).
        if self._shutdown:
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            data = encode_trace_request(spans)
            if _is_request_too_large(data, self._max_request_size):
                result.error = ValueError(f"span batch of {len(data)} bytes exceeds max_request_size")
                return SpanExportResult.FAILURE
            outcome = self._client.export(data)
            if not outcome.success:
                result.error = outcome.error
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
