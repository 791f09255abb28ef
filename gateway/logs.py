"""Structured logs: one JSON object per line (or a terse text line for terminals).

Only an allow-list of `extra` keys is written, so a sub, template values, a secret or a
token cannot reach the log through a careless `extra=`.

The access log (a line per call) may skip the LogRecord: when the process's only listener is
the handler `configure` installed, `write_direct` builds the very line JsonFormatter would and
queues it; queued lines are written together (LineHandler). Anything else listening (a test's
caplog, a handler added by an embedding program) gets records as before.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import orjson
from mypy_extensions import mypyc_attr

from gateway.current_span import current_span_context

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
        "frozen_objects",
    }
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k in SAFE_EXTRAS}


def _trace_ids() -> tuple[str, str] | None:
    """The current trace and span id as hex (the caller's, even with tracing off), or None."""
    ctx = current_span_context()
    trace_id = ctx[0]  # SpanContext's fields by index: its properties are a Python call each
    return (format(trace_id, "032x"), format(ctx[1], "016x")) if trace_id else None


@mypyc_attr(native_class=False)  # its base is interpreted (docs/performance.md: compiled build)
class TraceContextFilter(logging.Filter):
    """Stamps each record with the current trace and span id."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _trace_ids()
        if ids is not None:
            record.trace_id, record.span_id = ids
        return True


class _Stamp:
    """UTC timestamps to the millisecond, one strftime per second rather than per line. The
    second and its text are one tuple: threads that log at once never pair one's with the other's."""

    last: tuple[int, str] = (-1, "")

    def __call__(self, created: float) -> str:
        second = int(created)
        last = self.last
        if second != last[0]:
            last = self.last = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{last[1]}.{int((created - second) * 1000):03d}Z"  # LogRecord.msecs, truncated


@mypyc_attr(native_class=False)  # its base is interpreted (docs/performance.md: compiled build)
class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._stamp = _Stamp()

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self._stamp(record.created),
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


@mypyc_attr(native_class=False)  # its base is interpreted (docs/performance.md: compiled build)
class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}" + (f"  {extras}" if extras else "")
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + self.formatException(record.exc_info)
        return line


@mypyc_attr(native_class=False)  # its base is interpreted (docs/performance.md: compiled build)
class LineHandler(logging.StreamHandler[TextIO]):
    """The handler `configure` installs: each record's line, and lines queued by `write_direct`
    written together (one write for many calls' access lines) at most `flush_after_s` after the
    first of them or once `flush_lines` wait, whichever is first; a record's line, a flush and
    exit write them at once. One write per line was a system call per API call."""

    def __init__(self, stream: TextIO, json: bool, flush_after_s: float = 0.02, flush_lines: int = 64) -> None:
        super().__init__(stream)
        self._flush_after_s, self._flush_lines = flush_after_s, flush_lines
        self.json = json
        self.setFormatter(JsonFormatter() if json else TextFormatter())
        self._trace_filter = TraceContextFilter()
        self.addFilter(self._trace_filter)
        self._stamp = _Stamp()
        self._pending: list[str] = []
        self._scheduled = False

    def direct_ok(self) -> bool:
        """Whether a line written here says all a record would: JSON, this handler's own filter."""
        return self.json and self.level <= logging.INFO and self.filters == [self._trace_filter]

    def queue(self, line: str) -> None:
        with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
            pending = self._pending
            pending.append(line)
            if len(pending) >= self._flush_lines:
                self._drain()
                logging.StreamHandler.flush(self)
                return
            if self._scheduled:
                return
            self._scheduled = True
        try:
            asyncio.get_running_loop().call_later(self._flush_after_s, self.flush)
        except RuntimeError:  # no loop in this thread: now
            self.flush()

    def _drain(self) -> None:
        # Under the lock: queued lines first, so a record emitted after them is written after them.
        self._scheduled = False
        if self._pending:
            self.stream.write("\n".join(self._pending) + "\n")
            self._pending.clear()

    def emit(self, record: logging.LogRecord) -> None:
        if self._pending:
            self._drain()  # Handler.handle holds the lock
        super().emit(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._drain()
            super().flush()


_installed: LineHandler | None = None


def write_direct(logger: logging.Logger, msg: str, extra: Mapping[str, Any]) -> bool:
    """An INFO line from `logger` without a LogRecord, when nothing but the installed JSON handler
    would see the record; False (and nothing written) otherwise: log the record instead.

    The line is JsonFormatter's for the same record: ts, level, logger, msg, the allow-listed
    extras in their order, then the current trace and span id (TraceContextFilter's)."""
    if not logger.isEnabledFor(logging.INFO):
        return True  # a record would not be made either
    handler = _installed
    if handler is None or not handler.direct_ok() or logger.filters or logger.disabled:
        return False
    node: logging.Logger | None = logger
    while node is not None and node is not logging.root:
        if node.handlers or not node.propagate:
            return False
        node = node.parent
    root = logging.root.handlers
    if len(root) != 1 or root[0] is not handler:
        return False
    out: dict[str, Any] = {"ts": handler._stamp(time.time()), "level": "INFO", "logger": logger.name, "msg": msg}
    for k, v in extra.items():
        if k in SAFE_EXTRAS:
            out[k] = v
    ids = _trace_ids()  # what TraceContextFilter stamps on a record
    if ids is not None:
        out["trace_id"], out["span_id"] = ids
    handler.queue(orjson.dumps(out, default=str).decode())
    return True


def configure(level: str = "INFO", fmt: str = "auto") -> None:
    global _installed
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    if _installed is not None:
        _installed.flush()
    handler = _installed = LineHandler(sys.stderr, json=fmt == "json")
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
