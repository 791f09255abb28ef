"""SIGTERM under load, with real processes: a gateway and its SmartPush (the emulator) apart.

What a rolling update needs: health says NOT_SERVING at once and keeps answering while the
gateway drains; calls accepted before the signal run to completion (none CANCELLED); calls
that arrive during the drain are refused with UNAVAILABLE / SHUTTING_DOWN, having sent nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from smartpush_gateway_client.errors import decode

from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET
from tests.conftest import GatewayFactory
from tests.helpers import CLI, EmulatorAdmin, async_stub, free_port, process, send_request

LOADED = 40  # calls in flight when SIGTERM arrives
LATE = 10  # calls sent during the drain
UPSTREAM_LATENCY_MS = 1500
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _send(stub: Any, key: str) -> tuple[str, str | None]:
    try:
        await stub.Send(send_request(idempotency_key=key), timeout=15)
    except grpc.aio.AioRpcError as err:
        return err.code().name, decode(err).reason
    return "OK", None


async def _health_statuses(health: Any, stop: asyncio.Event) -> list[str]:
    """Fresh Check calls (what a kubelet probe makes) until told to stop or the server is gone."""
    seen: list[str] = []
    while not stop.is_set():
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
        except grpc.aio.AioRpcError as err:
            seen.append(err.code().name)
            break
        await asyncio.sleep(0.05)
    return seen


@pytest.mark.slow
async def test_sigterm_under_load_drains_accepted_calls_and_refuses_new_ones(tmp_path: Path) -> None:
    emu_port, gw_port = free_port(), free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTPUSH_GATEWAY_")}
    gw_env = {
        **base_env,
        "SMARTPUSH_GATEWAY_AUTH__MODE": "none",
        "SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URL": f"http://127.0.0.1:{emu_port}",
        "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__CLIENT_ID": DEMO_CLIENT_ID,
        "SMARTPUSH_GATEWAY_PROFILES__DEFAULT__SECRET": DEMO_SECRET,
        "SMARTPUSH_GATEWAY_STATE__SQLITE_PATH": str(tmp_path / "state.sqlite3"),
    }
    emulator = (CLI, "emulator", "--listen", f"127.0.0.1:{emu_port}")
    gateway = (CLI, "serve", "--listen", f"127.0.0.1:{gw_port}", "--log-format", "json")
    async with (
        process(*emulator, env=base_env, ready=b"emulator on"),
        process(*gateway, env=gw_env, ready=b"listening") as gw,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{emu_port}/_emulator") as admin,
        # No channel retries: this test looks at the gateway's own answers.
        grpc.aio.insecure_channel(f"127.0.0.1:{gw_port}", options=[("grpc.enable_retries", 0)]) as channel,
    ):
        stub = async_stub(channel)
        health: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stubs only know the sync stub
        assert (await _send(stub, "warm-up"))[0] == "OK"  # the token is cached
        (await admin.put("/faults", json={"latency_ms": UPSTREAM_LATENCY_MS, "endpoint": "send"})).raise_for_status()

        loaded = [asyncio.ensure_future(_send(stub, f"loaded-{i}")) for i in range(LOADED)]
        await asyncio.sleep(0.5)  # every one of them accepted and waiting on SmartPush
        os.kill(gw.pid, signal.SIGTERM)
        stop_probing = asyncio.Event()
        probes = asyncio.ensure_future(_health_statuses(health, stop_probing))
        await asyncio.sleep(0.2)
        late = await asyncio.gather(*(_send(stub, f"late-{i}") for i in range(LATE)))
        answers = await asyncio.gather(*loaded)
        stop_probing.set()
        statuses = await probes
        assert await asyncio.wait_for(gw.wait(), 30) == 0
        sends = (await admin.get("/requests", params={"endpoint": "send"})).json()

    assert answers == [("OK", None)] * LOADED  # accepted before SIGTERM: all completed, none CANCELLED
    assert late == [("UNAVAILABLE", "ERROR_REASON_SHUTTING_DOWN")] * LATE
    # Probes kept getting answers during the drain, all NOT_SERVING (the last may meet the server gone).
    serving = statuses if statuses[-1] == "NOT_SERVING" else statuses[:-1]
    assert len(serving) >= 3
    assert set(serving) == {"NOT_SERVING"}
    assert len(sends) == 1 + LOADED  # the warm-up and the loaded calls: the refused ones sent nothing


async def test_a_call_outlasting_the_grace_is_answered_with_a_reason_not_cancelled(
    make_gateway: GatewayFactory, admin: EmulatorAdmin
) -> None:
    # stop(grace) shorter than SmartPush's answer: the attempt is bounded by the drain, and the
    # caller hears why, instead of a CANCELLED from a server that went away under it.
    gw = await make_gateway()
    async with grpc.aio.insecure_channel(gw.address) as channel:
        stub = async_stub(channel)
        await stub.Send(send_request(), timeout=5)  # token cached
        await admin.faults(latency_ms=3000, endpoint="send")
        call = asyncio.ensure_future(_send(stub, "slow"))
        await asyncio.sleep(0.3)
        await gw.stop(0.5)
        assert await call == ("UNAVAILABLE", "ERROR_REASON_UPSTREAM_UNAVAILABLE")
