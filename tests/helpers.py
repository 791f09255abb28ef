"""Shared test helpers: an emulator admin client over real HTTP, a controllable clock, request builders."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
import httpx
from smartpush.gateway.v1 import delivery_pb2, push_service_pb2, push_service_pb2_grpc, template_pb2

from bench.ports import free_port as free_port  # re-exported: the tests take it from here
from gateway.emulator import DEMO_TEMPLATE_ID

if TYPE_CHECKING:
    from smartpush.gateway.v1.push_service_pb2_grpc import PushServiceAsyncStub

    AsyncStub: TypeAlias = PushServiceAsyncStub
else:
    AsyncStub = object


def async_stub(channel: grpc.aio.Channel) -> AsyncStub:
    """The generated stub on an aio channel (typed as mypy-protobuf's `PushServiceAsyncStub`, a .pyi-only name)."""
    return push_service_pb2_grpc.PushServiceStub(channel)


PROJECT = "1e1b2a4c-8f52-4b43-9c1e-3a2f0f1b7d11"
SUB = "ab" * 40  # the 80-hex-character shape of the reference's examples


class EmulatorAdmin:
    """The emulator's `/_emulator/` API, called over HTTP like any other user would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.AsyncClient(base_url=url + "/_emulator", timeout=5.0)

    async def close(self) -> None:
        await self._http.aclose()

    async def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        params = {"endpoint": endpoint} if endpoint else None
        r = await self._http.get("/requests", params=params)
        r.raise_for_status()
        result: list[dict[str, Any]] = r.json()
        return result

    async def stats(self) -> dict[str, int]:
        r = await self._http.get("/stats")
        r.raise_for_status()
        result: dict[str, int] = r.json()
        return result

    async def sends(self) -> list[dict[str, Any]]:
        return await self.requests("send")

    async def config(self, **fields: Any) -> dict[str, Any]:
        r = await self._http.patch("/config", json=fields)
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    async def faults(self, **fields: Any) -> None:
        (await self._http.put("/faults", json=fields)).raise_for_status()

    async def next_fault(self, **fields: Any) -> None:
        (await self._http.post("/faults/next", json=fields)).raise_for_status()

    async def expire_tokens(self) -> None:
        (await self._http.post("/tokens/expire")).raise_for_status()

    async def reset(self) -> None:
        (await self._http.post("/reset")).raise_for_status()
        (await self._http.delete("/faults")).raise_for_status()


class ShiftClock:
    """Real time plus an offset the test moves; `sleep` advances the offset instead of waiting."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds
        await asyncio.sleep(0)


def send_request(
    *surfaces: int,
    mode: int = delivery_pb2.DELIVERY_MODE_BROADCAST,
    template_id: str = DEMO_TEMPLATE_ID,
    **fields: Any,
) -> push_service_pb2.SendRequest:
    """A valid request for the demo template; keyword fields override SendRequest fields."""
    req = push_service_pb2.SendRequest(
        project_id=PROJECT,
        sub=SUB,
        delivery=delivery_pb2.DeliveryConfig(
            delivery_mode=mode,  # type: ignore[arg-type]
            destinations=[
                delivery_pb2.Destination(surface=s)  # type: ignore[arg-type]
                for s in (surfaces or (delivery_pb2.SURFACE_COMPANION,))
            ],
            template_content=template_pb2.TemplateContent(id=template_id),
        ),
    )
    for name, value in fields.items():
        if isinstance(value, (str, bool)):
            setattr(req, name, value)
        else:
            getattr(req, name).CopyFrom(value)
    return req


def unwrap(body: dict[str, Any]) -> dict[str, Any]:
    inner = body.get("requestPayload", body)
    assert isinstance(inner, dict)
    return inner


class RedisServer:
    """A real `redis-server` (Debian's, installed by `make toolchains`) on a free loopback port,
    without persistence; stopped by PID and restartable on the same port. Optionally with a
    password and TLS only (`tls`: the CA, certificate and key files)."""

    def __init__(self, password: str | None = None, tls: tuple[Path, Path, Path] | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.tls = tls
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: run `make toolchains` (Debian's redis-server)")
        args = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if self.tls:
            ca, cert, key = self.tls
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-ca-cert-file", str(ca)]
            args += ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(self.port)]
        if self.password:
            args += ["--requirepass", self.password]
        self._proc = await asyncio.create_subprocess_exec(
            binary, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.025)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise RuntimeError(f"redis-server did not listen on {self.port}")

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()
        self._proc = None


CLI = str(Path(sys.executable).parent / "smartpush-gateway")


@contextlib.asynccontextmanager
async def process(*argv: str, env: dict[str, str], ready: bytes) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real process (the gateway's CLI, usually), ready once it prints `ready`; killed at the end."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env, start_new_session=True
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            while ready not in (line := await proc.stdout.readline()):
                assert line, f"{argv[1]} exited early"
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any SMARTPUSH_GATEWAY_* variable of the test run, plus `settings`
    (callers unidentified unless `settings` says otherwise: these tests are about other things)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SMARTPUSH_GATEWAY_")}
    return {**base, "SMARTPUSH_GATEWAY_AUTH__MODE": "none", **settings}


def delivered(sends: list[dict[str, Any]]) -> dict[str, int]:
    """How many times SmartPush (the emulator) accepted each RqUID: HTTP 200 answers only."""
    counts: dict[str, int] = {}
    for s in sends:
        if s["status"] == 200:
            counts[s["rq_uid"]] = counts.get(s["rq_uid"], 0) + 1
    return counts


@contextlib.asynccontextmanager
async def http_server(method: str, path: str, handler: Any) -> AsyncIterator[str]:
    """A real HTTP endpoint (aiohttp) on a free loopback port for the test's duration; yields its URL."""
    from aiohttp import web

    app = web.Application()
    app.router.add_route(method, path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{path}"
    finally:
        await runner.cleanup()
