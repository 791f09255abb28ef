"""The OTLP span exporters (gRPC and HTTP/protobuf) with the span encoding of span_wire.

Everything else (endpoints, headers, TLS, compression, retries, size limit, self-metrics) is
the SDK exporters' own, configured by the standard OTEL_EXPORTER_OTLP_* variables.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._common import _is_request_too_large
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from gateway.telemetry.span_wire import encode_trace_request


class FastGrpcSpanExporter(GrpcSpanExporter):
    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        # Parsing the bytes back is C (upb) and cheap; building them is what the SDK did slowly.
        return ExportTraceServiceRequest.FromString(encode_trace_request(data))


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
