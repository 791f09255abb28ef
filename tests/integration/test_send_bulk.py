"""`send-bulk` for real: a gateway process, the emulator in its own process, a 1,000-row file sent
from a pseudo-terminal, interrupted half way, and run again — every row delivered exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import subprocess
from pathlib import Path
from typing import Any

import yaml

from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET, DEMO_TEMPLATE_ID
from tests.conftest import GatewayFactory
from tests.helpers import CLI, PROJECT, EmulatorAdmin, clean_env, delivered, free_port, process

ROWS = 1000


def _bulk(target: str, path: Path, *extra: str) -> list[str]:
    return [CLI, "send-bulk", "--target", target, "--template", DEMO_TEMPLATE_ID, "--surface", "COMPANION",
            "--project", PROJECT, "--batch-size", "50", str(path), *extra]  # fmt: skip


async def test_send_bulk_is_resumable_and_sends_every_row_once(tmp_path: Path) -> None:
    emulator_listen, gateway_listen = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    (tmp_path / "emulator.yaml").write_text(yaml.safe_dump({"record_limit": 5000}))
    env = clean_env(
        SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URL=f"http://{emulator_listen}",
        SMARTPUSH_GATEWAY_PROFILES__DEFAULT__CLIENT_ID=DEMO_CLIENT_ID,
        SMARTPUSH_GATEWAY_PROFILES__DEFAULT__SECRET=DEMO_SECRET,
        SMARTPUSH_GATEWAY_STATE__SQLITE_PATH=str(tmp_path / "state.sqlite3"),
    )
    rows = tmp_path / "recipients.csv"
    rows.write_text("sub\n" + "".join(f"{i:04d}" * 20 + "\n" for i in range(ROWS)))
    results = Path(f"{rows}.results.jsonl")
    emulator = (CLI, "emulator", "--listen", emulator_listen, "--config", str(tmp_path / "emulator.yaml"))
    async with (
        process(*emulator, env=clean_env(), ready=b"emulator on"),
        process(CLI, "serve", "--listen", gateway_listen, env=env, ready=b"listening"),
    ):
        admin = EmulatorAdmin(f"http://{emulator_listen}")
        await admin.faults(latency_ms=40, endpoint="send")  # slow enough to stop it half way

        # First run on a pseudo-terminal (the progress bar), interrupted half way.
        first, master = _start_on_a_pty(_bulk(gateway_listen, rows), env)
        screen = b""
        try:
            async with asyncio.timeout(60):
                while _lines(results) < ROWS // 2:
                    screen += await asyncio.to_thread(_read_some, master)
            first.send_signal(signal.SIGINT)
            code = await asyncio.to_thread(first.wait, 30)
            screen += await asyncio.to_thread(_drain, master)
        finally:
            if first.poll() is None:
                first.kill()
            os.close(master)
        assert code == 130
        text = screen.decode(errors="replace")
        assert "sending" in text
        assert f"/{ROWS}" in text  # the bar counts rows: n/1000
        assert "run the same file again" in text
        done_first = _lines(results)
        assert ROWS // 2 <= done_first < ROWS

        # Run again: the rest is sent, what was sent is replayed.
        second = await asyncio.to_thread(
            subprocess.run, _bulk(gateway_listen, rows), env=env, capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 0, second.stdout + second.stderr
        summary = json.loads(second.stdout.strip().splitlines()[-1])
        assert summary["rows"] == ROWS
        assert summary["failed"] == {}
        assert summary["replayed"] >= done_first
        assert summary["sent"] + summary["replayed"] == ROWS
        assert "\x1b[" not in second.stdout + second.stderr  # no bar without a terminal
        sends = await admin.sends()
        stats = await admin.stats()
        await admin.close()

    lines = _results(results)
    assert [line["row"] for line in lines] == list(range(1, ROWS + 1))
    assert {line["status"] for line in lines} == {"OK"}
    assert all("sub" not in line and len(line["sub_hash"]) == 16 for line in lines)
    rq_uids = [line["rq_uid"] for line in lines]
    assert len(set(rq_uids)) == ROWS
    assert delivered(sends) == dict.fromkeys(rq_uids, 1)  # every row, exactly once
    assert stats["send:200"] == ROWS


def _start_on_a_pty(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    started = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    return started, master


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _read_some(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def _drain(fd: int) -> bytes:
    out = b""
    while chunk := _read_some(fd):
        out += chunk
    return out


async def test_send_bulk_reads_json_lines_and_reports_bad_rows(tmp_path: Path, make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    rows = tmp_path / "r.jsonl"
    rows.write_text(json.dumps({"sub": "ab" * 40}) + "\n" + json.dumps({"sub": "cd" * 40, "project_id": ""}) + "\n")
    done = await asyncio.to_thread(
        subprocess.run,
        _bulk(gw.address, rows, "--button-text", "x" * 31),
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1  # a row failed
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["failed"] == {"ERROR_REASON_INVALID_REQUEST": 2}
    lines = _results(Path(f"{rows}.results.jsonl"))
    assert [(x["row"], x["status"]) for x in lines] == [(1, "INVALID_ARGUMENT"), (2, "INVALID_ARGUMENT")]
    bad = tmp_path / "bad.csv"
    bad.write_text("sub\n\n,\n")
    refused = await asyncio.to_thread(
        subprocess.run, _bulk(gw.address, bad), env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert "row 1: no `sub`" in refused.stderr
