"""The access log's direct lines (no LogRecord): the same line the JSON formatter writes, in
order with records, none lost, and records again whenever anything else listens."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

from gateway import logs
from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET, EmulatorServer
from tests.helpers import async_stub, send_request

LOGGER = "gateway.calls"
EXTRA = {"rpc": "PushService/Send", "caller": "billing", "grpc_code": "OK", "duration_ms": 1.25, "rq_uid": "u-1"}


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """`logs.configure` writing JSON into a buffer; the root logger as pytest had it afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logs._installed)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    logs.configure("INFO", "json")
    yield out
    root.handlers[:], level, logs._installed = saved
    root.setLevel(level)


def _only_ours() -> None:
    """pytest hangs its capturing handlers on the root logger for each test phase: off them, so
    the installed handler is the only listener, as in the gateway's own process."""
    assert logs._installed is not None
    logging.getLogger().handlers[:] = [logs._installed]


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_a_direct_line_is_the_line_the_formatter_writes_for_the_record(stream: io.StringIO) -> None:
    _only_ours()
    log = logging.getLogger(LOGGER)
    tracer = TracerProvider().get_tracer("test")
    extra = {**EXTRA, "sub": "user-42", "token": "secret"}  # not allow-listed: never written
    with tracer.start_as_current_span("call"):
        assert logs.write_direct(log, "PushService/Send OK", extra)
        assert stream.getvalue() == ""  # queued for the end of this loop turn
        log.info("%s %s", "PushService/Send", "OK", extra=extra)  # the record path, for comparison
    direct, record = _lines(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(direct.pop("ts")))
    record.pop("ts")
    assert list(direct.items()) == list(record.items())  # same keys, same order, same values
    assert direct["trace_id"]
    assert direct["caller"] == "billing"
    assert "sub" not in direct
    assert "token" not in direct


async def test_queued_lines_are_written_together_soon_after(stream: io.StringIO) -> None:
    _only_ours()
    log = logging.getLogger(LOGGER)
    for n in range(3):
        assert logs.write_direct(log, f"call {n}", EXTRA)
    await asyncio.sleep(0)
    assert stream.getvalue() == ""  # not a write per line
    await asyncio.sleep(0.2)  # the flush timer (20 ms) is due first on this loop: an order, not a timing
    assert [line["msg"] for line in _lines(stream)] == ["call 0", "call 1", "call 2"]


async def test_a_full_batch_is_written_at_once(stream: io.StringIO) -> None:
    _only_ours()
    log = logging.getLogger(LOGGER)
    for n in range(64):
        logs.write_direct(log, f"call {n}", EXTRA)
    assert len(_lines(stream)) == 64  # the 64th line wrote them all, without waiting for the timer


async def test_queued_lines_stay_before_a_later_record_and_a_flush_writes_them(stream: io.StringIO) -> None:
    _only_ours()
    log = logging.getLogger(LOGGER)
    logs.write_direct(log, "first", EXTRA)
    logging.getLogger("gateway.other").warning("second")  # emitted before the loop turns
    assert [line["msg"] for line in _lines(stream)] == ["first", "second"]
    logs.write_direct(log, "third", EXTRA)
    handler = logging.getLogger().handlers[0]
    handler.flush()  # what logging.shutdown does at exit
    assert [line["msg"] for line in _lines(stream)] == ["first", "second", "third"]


def test_without_a_running_loop_the_line_is_written_at_once(stream: io.StringIO) -> None:
    _only_ours()
    assert logs.write_direct(logging.getLogger(LOGGER), "now", EXTRA)
    assert [line["msg"] for line in _lines(stream)] == ["now"]


async def test_anything_else_listening_gets_records(stream: io.StringIO) -> None:
    _only_ours()
    log = logging.getLogger(LOGGER)
    extra_handler = logging.Handler()
    for attach in (logging.getLogger(), log, logging.getLogger("gateway")):
        attach.addHandler(extra_handler)
        try:
            assert not logs.write_direct(log, "x", EXTRA)
        finally:
            attach.removeHandler(extra_handler)
    log.addFilter(lambda record: True)
    try:
        assert not logs.write_direct(log, "x", EXTRA)
    finally:
        log.filters.clear()
    await asyncio.sleep(0)
    assert stream.getvalue() == ""
    # Below INFO nothing is written either way.
    log.setLevel(logging.WARNING)
    try:
        assert logs.write_direct(log, "x", EXTRA)
    finally:
        log.setLevel(logging.NOTSET)
    await asyncio.sleep(0)
    assert stream.getvalue() == ""


def test_text_logs_take_the_record_path(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO) -> None:
    monkeypatch.setattr(sys, "stderr", stream)
    logs.configure("INFO", "text")
    assert not logs.write_direct(logging.getLogger(LOGGER), "x", EXTRA)


async def test_a_served_call_writes_its_access_line(emulator: EmulatorServer, tmp_path: Path) -> None:
    """The real process: its stderr carries one JSON line per call, caller and code included."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SMARTPUSH_GATEWAY_")},
        "SMARTPUSH_GATEWAY_AUTH__MODE": "none",
        "SMARTPUSH_GATEWAY_LOG_FORMAT": "json",
        "SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URL": emulator.url,
        "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__CLIENT_ID": DEMO_CLIENT_ID,
        "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__SECRET": DEMO_SECRET,
        "SMARTPUSH_GATEWAY_STATE__SQLITE_PATH": str(tmp_path / "state.sqlite3"),
    }
    cli = str(Path(sys.executable).parent / "smartpush-gateway")
    proc = await asyncio.create_subprocess_exec(
        cli, "serve", "--listen", "127.0.0.1:0", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, line
        async with grpc.aio.insecure_channel(f"127.0.0.1:{match.group(1)}") as channel:
            for _ in range(2):
                reply = await async_stub(channel).Send(send_request(), timeout=10)
                assert reply.results[0].status_code == 0
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    access = [json.loads(x) for x in err.decode().splitlines() if x.startswith("{") and LOGGER in x]
    assert [(a["msg"], a["grpc_code"], a["caller"]) for a in access] == [("PushService/Send OK", "OK", "anonymous")] * 2
    assert all(a["rq_uid"] and a["level"] == "INFO" for a in access)
