"""The quick start for real: `make run`, the `send` CLI, health, reflection and SIGTERM draining."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.emulator import DEMO_TEMPLATE_ID
from tests.helpers import async_stub, free_port, send_request

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Running:
    def __init__(self, proc: asyncio.subprocess.Process, target: str, emulator_url: str, banner: str) -> None:
        self.proc, self.target, self.emulator_url, self.banner = proc, target, emulator_url, banner


@contextlib.asynccontextmanager
async def running(*argv: str, stderr: Path | None = None) -> AsyncIterator[Running]:
    """The server `argv` starts, once its banner is out; its log (stderr) to the file `stderr`, if given."""
    with open(stderr or os.devnull, "wb") as log:  # noqa: ASYNC230 (a local file, before the server starts)
        async with _running(argv, log) as server:
            yield server


@contextlib.asynccontextmanager
async def _running(argv: tuple[str, ...], log: Any) -> AsyncIterator[Running]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        start_new_session=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert proc.stdout is not None
    banner = ""
    try:
        async with asyncio.timeout(60):
            while "grpcurl" not in banner:
                line = (await proc.stdout.readline()).decode()
                assert line, f"server exited early: {banner}"
                banner += line
        target = re.search(r"listening on (\S+)", banner)
        emulator = re.search(r"emulator on (http://\S+)", banner)
        assert target is not None
        assert emulator is not None
        yield Running(proc, target.group(1), emulator.group(1), banner)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


async def test_make_run_serves_and_the_send_cli_succeeds() -> None:
    port = free_port()
    async with running("make", "-s", "run", f"LISTEN=127.0.0.1:{port}") as server:
        assert server.target == f"127.0.0.1:{port}"
        assert "smartpush-gateway send" in server.banner  # it prints how to call it
        cli = await asyncio.create_subprocess_exec(
            str(BIN / "smartpush-gateway"),
            "send",
            "--target", server.target,
            "--project", "demo-project",
            "--sub", "demo-user",
            "--template", DEMO_TEMPLATE_ID,
            "--surface", "COMPANION",
            "--surface", "SBERBOX",
            "--mode", "broadcast",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await cli.communicate()
        assert cli.returncode == 0
        result = json.loads(out)
        assert [(r["surface"], r["status_code"]) for r in result["results"]] == [
            ("SURFACE_COMPANION", 0),
            ("SURFACE_SBERBOX", 0),
        ]
        bad = await asyncio.create_subprocess_exec(
            str(BIN / "smartpush-gateway"),
            "send",
            "--target", server.target,
            "--project", "demo-project",
            "--sub", "demo-user",
            "--template", DEMO_TEMPLATE_ID,
            "--surface", "COMPANION",
            "--button-text", "x" * 31,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await bad.communicate()
        assert bad.returncode == 1
        error = json.loads(out)
        assert error["code"] == "INVALID_ARGUMENT"
        assert error["reason"] == "ERROR_REASON_INVALID_REQUEST"
        assert error["field_violations"][0]["field"] == "delivery.template_content.mobile_app_parameters.button_text"


async def test_health_reflection_and_sigterm_drain() -> None:
    port = free_port()
    argv = (str(BIN / "smartpush-gateway"), "serve", "--emulator", "--listen", f"127.0.0.1:{port}")
    async with running(*argv) as server, grpc.aio.insecure_channel(server.target) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stubs only know the sync stub
        for service in ("", "smartpush.gateway.v1.PushService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

        reflect: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
        replies = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name async for r in replies for s in r.list_services_response.service}
        assert {"smartpush.gateway.v1.PushService", "grpc.health.v1.Health"} <= names

        stub = async_stub(channel)
        await stub.Send(send_request(), timeout=5)  # warm the token
        async with httpx.AsyncClient() as http:
            fault = {"latency_ms": 800, "count": 1}
            (await http.post(server.emulator_url + "/_emulator/faults/next", json=fault)).raise_for_status()
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        in_flight = asyncio.ensure_future(stub.Send(send_request(), timeout=10))
        await asyncio.sleep(0.2)
        os.kill(server.proc.pid, signal.SIGTERM)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()  # an open Watch stream would hold the drain for the whole grace period
        response = await in_flight  # finishes within the grace period
        assert response.results[0].status_code == 0
        assert await asyncio.wait_for(server.proc.wait(), 15) == 0


async def test_the_serving_process_sets_its_startup_heap_aside(tmp_path: Path) -> None:
    """gateway/heap.py: once it serves, start-up's long-lived objects are out of the cyclic GC's
    generations (every full collection walked them all: ~35 ms of the event loop's time)."""
    stderr = tmp_path / "stderr.log"
    argv = (str(BIN / "smartpush-gateway"), "serve", "--emulator", "--log-format", "json")
    async with (
        running(*argv, "--listen", f"127.0.0.1:{free_port()}", stderr=stderr) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        await async_stub(channel).Send(send_request(), timeout=5)
    lines = [json.loads(line) for line in stderr.read_text().splitlines() if line.startswith("{")]
    frozen = [line for line in lines if line["msg"] == "start-up heap frozen for the garbage collector"]
    assert len(frozen) == 1, lines
    # Tens of thousands: the modules, classes and descriptors start-up made (without it: 0).
    assert frozen[0]["frozen_objects"] > 20_000


@pytest.mark.parametrize("argv", [("--help",), ("send", "--help"), ("emulator", "--help")])
async def test_cli_help(argv: tuple[str, ...]) -> None:
    proc = await asyncio.create_subprocess_exec(str(BIN / "smartpush-gateway"), *argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert b"usage: smartpush-gateway" in out
