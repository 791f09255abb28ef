"""Each language's client against a gateway backed by the emulator: a push, then a rejected request."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import grpc
import pytest
from smartpush.gateway.v1 import delivery_pb2 as d
from smartpush_gateway_client import GatewayCallError, GatewayClient

from gateway.server import Gateway
from tests.conftest import GatewayFactory
from tests.helpers import EmulatorAdmin, send_request

ROOT = Path(__file__).resolve().parents[2]


async def _run(*argv: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_python_client(gateway: Gateway, admin: EmulatorAdmin) -> None:
    async with GatewayClient(gateway.address, channels=2) as client:
        response = await client.send(send_request(d.SURFACE_COMPANION, d.SURFACE_SBERBOX))
        assert [(r.surface, r.status_code) for r in response.results] == [
            (d.SURFACE_COMPANION, 0),
            (d.SURFACE_SBERBOX, 0),
        ]
        bad = send_request(d.SURFACE_COMPANION)
        bad.delivery.template_content.mobile_app_parameters.button_text = "x" * 31
        with pytest.raises(GatewayCallError) as caught:
            await client.send(bad)
        assert caught.value.reason == "ERROR_REASON_INVALID_REQUEST"
        assert [v.field for v in caught.value.field_violations] == [
            "delivery.template_content.mobile_app_parameters.button_text"
        ]


async def test_one_client_call_never_makes_more_upstream_posts_than_the_gateway_allows(
    gateway: Gateway, admin: EmulatorAdmin
) -> None:
    # SmartPush always answers 503. The gateway retries up to its max_attempts and then answers
    # UNAVAILABLE with a negative retry pushback, so the channel's retry policy (which retries
    # UNAVAILABLE) does not multiply the attempts: one retry layer.
    await admin.faults(error_rates={"503": 1.0}, retry_after_s=0, endpoint="send")
    async with GatewayClient(gateway.address, retry_attempts=5) as client:
        with pytest.raises(GatewayCallError) as caught:
            await client.send(send_request())
    assert (caught.value.code, caught.value.reason) == (
        grpc.StatusCode.UNAVAILABLE,
        "ERROR_REASON_UPSTREAM_UNAVAILABLE",
    )
    sends = await admin.sends()
    assert 1 < len(sends) <= gateway.settings.smartpush.max_attempts
    assert [s["status"] for s in sends] == [503] * gateway.settings.smartpush.max_attempts


async def test_the_channel_retries_a_refusal_that_reached_nothing(
    make_gateway: GatewayFactory, admin: EmulatorAdmin
) -> None:
    # Two replicas behind one round-robin channel; the first is draining. Its SHUTTING_DOWN
    # refusal (nothing sent upstream) is retried by the channel and lands on the other one.
    draining, serving = await make_gateway(), await make_gateway()
    draining.drain.closing = True
    target = f"ipv4:{draining.address},{serving.address}"
    async with GatewayClient(target) as client:
        for _ in range(4):  # whichever replica round-robin picks first, every call succeeds
            response = await client.send(send_request())
            assert response.results[0].status_code == 0
    assert len(await admin.sends()) == 4


async def test_typescript_client(gateway: Gateway) -> None:
    cwd = ROOT / "clients/typescript"
    code, out = await _run("npx", "tsc", "-p", "tsconfig.json", cwd=cwd, env={})
    assert code == 0, out
    code, out = await _run("node", "--test", "dist/test/", cwd=cwd, env={"GATEWAY_TARGET": gateway.address})
    assert code == 0, out
    assert "# pass 1" in out
    assert "# skipped 0" in out


async def test_go_client(gateway: Gateway) -> None:
    assert shutil.which("go"), "Go is missing: run `make toolchains`"
    env = {
        "GO111MODULE": "off",
        "GOPATH": f"{ROOT / 'clients/go'}:/usr/share/gocode",
        "GOFLAGS": "",
        "GATEWAY_TARGET": gateway.address,
    }
    code, out = await _run("go", "test", "-count=1", "-v", "github.com/smartpush-gateway/go/client", cwd=ROOT, env=env)
    assert code == 0, out
    assert "--- PASS: TestSmoke" in out
