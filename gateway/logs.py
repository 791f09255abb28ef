"""Structured logs: one JSON object per line (or a terse text line for terminals).

Only an allow-list of `extra` keys is written, so a sub, template values, a secret or a
token cannot reach the log through a careless `extra=`.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson
from opentelemetry import trace

SAFE_EXTRAS = frozenset(
    {
        "rpc",
        "caller",  # the admitted caller's configured name (never its token or certificate)
        "grpc_code",
        "reason",
        "rq_uid",
        "duration_ms",
        "profile",
        "template_id",
        "surfaces",
        "delivery_mode",
        "status_codes",
        "attempt",
        "retry_reason",
        "delay_s",
        "timeout_s",
        "lifetime_s",
        "listen",
        "emulator",
        "validate_only",
        "replayed",
        "upstream_status",
        "peer",
        "trace_id",
        "span_id",
        "in_flight",
        "setting",
    }
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k in SAFE_EXTRAS}


class TraceContextFilter(logging.Filter):
    """Stamps each record with the current trace and span id (the caller's, even with tracing off)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        if ctx.trace_id:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        return True


class JsonFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one strftime per second, not per line (called under the handler's lock)
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        out: dict[str, Any] = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info and record.exc_info[0] is not None:
            # Our own exceptions' text is safe to log: messages never carry secrets or tokens.
            out["exc_type"] = record.exc_info[0].__name__
            out["exc_message"] = str(record.exc_info[1])
            out["exc_stack"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}" + (f"  {extras}" if extras else "")
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "INFO", fmt: str = "auto") -> None:
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(TraceContextFilter())
    # Per-record work no line of ours prints (the logging HOWTO's "Optimization" section): the
    # caller's file and line (a stack walk), thread, process and multiprocessing names.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (and the URLs with tokens it could print) stays out.
    for noisy in ("httpx", "httpcore", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
