"""OpenTelemetry for the gateway: providers from OTEL_* variables, instruments, the PII policy."""

from gateway.telemetry.setup import Telemetry, build_telemetry

__all__ = ["Telemetry", "build_telemetry"]
