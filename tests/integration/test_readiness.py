"""Readiness follows whether a token for the default profile can be had; liveness never depends on SmartPush."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from gateway.config import ProfileSettings
from gateway.emulator import DEMO_CLIENT_ID
from gateway.readiness import LIVENESS
from gateway.server import Gateway
from tests.conftest import GatewayFactory
from tests.helpers import AsyncStub, EmulatorAdmin, async_stub, send_request

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
PUSH = "smartpush.gateway.v1.PushService"


async def _status(gateway: Gateway, service: str) -> int:
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stubs only know the sync stub
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway(readiness_checks_token=True)


async def test_ready_with_a_token_and_the_check_warms_the_cache(gateway: Gateway, admin: EmulatorAdmin) -> None:
    assert await _status(gateway, "") == SERVING
    assert await _status(gateway, PUSH) == SERVING
    assert await _status(gateway, LIVENESS) == SERVING
    assert (await admin.stats()).get("token") == 1  # fetched by the readiness check, before any call
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        stub: AsyncStub = async_stub(channel)
        await stub.Send(send_request(), timeout=5)
    await gateway.readiness.check()
    assert (await admin.stats()).get("token") == 1  # the cached token serves; no request per check


async def test_refused_credentials_mean_not_ready_but_alive(make_gateway: GatewayFactory) -> None:
    wrong = {"default": ProfileSettings(client_id=DEMO_CLIENT_ID, secret=SecretStr("not-the-secret"))}
    gateway = await make_gateway(profiles=wrong, readiness_checks_token=True)
    assert await _status(gateway, "") == NOT_SERVING
    assert await _status(gateway, PUSH) == NOT_SERVING
    assert await _status(gateway, LIVENESS) == SERVING


async def test_readiness_recovers_when_the_token_endpoint_does(
    make_gateway: GatewayFactory, admin: EmulatorAdmin
) -> None:
    await admin.faults(endpoint="token", error_rates={"503": 1.0})
    gateway = await make_gateway(readiness_checks_token=True)
    assert await _status(gateway, "") == NOT_SERVING
    await admin.faults(endpoint="any", error_rates={})
    assert await gateway.readiness.check() is True
    assert await _status(gateway, "") == SERVING


async def test_a_replica_not_ready_at_start_looks_again_well_before_the_interval(
    make_gateway: GatewayFactory, admin: EmulatorAdmin
) -> None:
    await admin.faults(endpoint="token", error_rates={"503": 1.0})
    gateway = await make_gateway(readiness_checks_token=True, readiness_interval_s=600)
    assert await _status(gateway, "") == NOT_SERVING
    await admin.faults(endpoint="any", error_rates={})
    # No explicit check: the readiness loop itself retries (0.5 s, 1 s, ...), not after 600 s.
    async with grpc.aio.insecure_channel(gateway.address) as channel, asyncio.timeout(15):
        health: Any = health_pb2_grpc.HealthStub(channel)
        async for reply in health.Watch(health_pb2.HealthCheckRequest(service="")):
            if reply.status == SERVING:
                break
    assert gateway.readiness.ready is True


async def test_an_outage_with_a_valid_token_keeps_the_replica_ready(gateway: Gateway, admin: EmulatorAdmin) -> None:
    await admin.faults(endpoint="any", error_rates={"503": 1.0})
    assert await gateway.readiness.check() is True  # the cached token still serves
    assert await _status(gateway, "") == SERVING


async def test_no_default_profile_is_ready_on_configuration_alone(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(profiles={}, allow_inline_credentials=True, readiness_checks_token=True)
    assert await _status(gateway, "") == SERVING


async def test_the_token_check_can_be_turned_off(make_gateway: GatewayFactory, admin: EmulatorAdmin) -> None:
    wrong = {"default": ProfileSettings(client_id=DEMO_CLIENT_ID, secret=SecretStr("not-the-secret"))}
    gateway = await make_gateway(profiles=wrong, readiness_checks_token=False)
    assert await _status(gateway, "") == SERVING
    assert await admin.stats() == {}
