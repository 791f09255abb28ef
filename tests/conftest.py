"""Fixtures: the emulator over real HTTP and the gateway as a real gRPC server, both on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from pydantic import SecretStr

from gateway.clock import Clock
from gateway.config import ProfileSettings, Settings, SmartPushSettings
from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET, EmulatorServer, start_emulator
from gateway.server import Gateway, start_gateway
from gateway.telemetry import Telemetry
from tests.helpers import AsyncStub, EmulatorAdmin, RedisServer, async_stub

GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    server = await start_emulator("127.0.0.1", 0)
    yield server
    await server.stop()


@pytest.fixture
async def admin(emulator: EmulatorServer) -> AsyncIterator[EmulatorAdmin]:
    client = EmulatorAdmin(emulator.url)
    yield client
    await client.close()


def settings_for(emulator: EmulatorServer, **overrides: Any) -> Settings:
    smartpush: dict[str, Any] = {"base_url": emulator.url, "backoff_initial_s": 0.01, "backoff_max_s": 0.05}
    smartpush.update(overrides.pop("smartpush", {}))
    profiles = overrides.pop(
        "profiles", {"default": ProfileSettings(client_id=DEMO_CLIENT_ID, secret=SecretStr(DEMO_SECRET))}
    )
    return Settings(
        listen="127.0.0.1:0",
        profiles=profiles,
        smartpush=SmartPushSettings(**smartpush),
        # Off so a test sees the gateway's first token request itself; tests/integration/test_readiness.py turns it on.
        readiness_checks_token=overrides.pop("readiness_checks_token", False),
        auth=overrides.pop("auth", {"mode": "none"}),
        **overrides,
    )


@pytest.fixture
async def make_gateway(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    started: list[Gateway] = []

    async def factory(clock: Clock | None = None, telemetry: Telemetry | None = None, **overrides: Any) -> Gateway:
        overrides.setdefault("state", {"sqlite_path": tmp_path / "state.sqlite3"})
        gw = await start_gateway(settings_for(emulator, **overrides), clock=clock, telemetry=telemetry)
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        await gw.stop(0)


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway()


@pytest.fixture
async def channel(gateway: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(gateway.address) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> AsyncStub:
    return async_stub(channel)


@pytest.fixture
def smartapp(channel: grpc.aio.Channel) -> Any:
    from smartpush.gateway.v1 import smartapp_service_pb2_grpc

    return smartapp_service_pb2_grpc.SmartAppServiceStub(channel)


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    yield server
    await server.stop()
