"""smartpush-gateway: a gRPC gateway in front of Sber's SmartPush REST API."""

__version__ = "0.1.0"
