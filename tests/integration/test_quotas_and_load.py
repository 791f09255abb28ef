"""How much: budgets shared by gateway processes through Redis, and load shed at once (never left to
hit deadlines or answered CANCELLED), with real processes, a real Redis and real JWTs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from smartpush_gateway_client.errors import decode

from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET, EmulatorServer
from tests.helpers import CLI, EmulatorAdmin, RedisServer, async_stub, clean_env, free_port, process, send_request
from tests.jwts import AUDIENCE, ISSUER, Signer

BILLING = "system:serviceaccount:billing:api"
_NO_RETRIES = [("grpc.enable_retries", 0), ("grpc.use_local_subchannel_pool", 1)]


@contextlib.asynccontextmanager
async def gateways(count: int, config: dict[str, Any], tmp_path: Path, **env: str) -> AsyncIterator[list[Any]]:
    """`count` gateway processes with one YAML config; yields a stub per process."""
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    environ = clean_env(SMARTPUSH_GATEWAY_CONFIG=str(path), **env)
    environ.pop("SMARTPUSH_GATEWAY_AUTH__MODE")  # the config says
    targets = [f"127.0.0.1:{free_port()}" for _ in range(count)]
    async with contextlib.AsyncExitStack() as stack:
        for target in targets:
            await stack.enter_async_context(process(CLI, "serve", "--listen", target, env=environ, ready=b"listening"))
        channels = [await stack.enter_async_context(grpc.aio.insecure_channel(t, options=_NO_RETRIES)) for t in targets]
        yield [async_stub(ch) for ch in channels]


def base_config(emulator: EmulatorServer, redis: RedisServer | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "smartpush": {"base_url": emulator.url},
        "profiles": {"default": {"client_id": DEMO_CLIENT_ID, "secret": DEMO_SECRET}},
        "auth": {"mode": "none"},
        "log_format": "json",
    }
    if redis is not None:
        config["state"] = {"backend": "redis", "redis_url": redis.url}
    return config


async def _outcome(call: Any) -> tuple[str, Any]:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code().name, decode(err)
    return "OK", None


async def test_a_project_window_is_one_budget_across_processes(
    emulator: EmulatorServer, admin: EmulatorAdmin, redis_server: RedisServer, tmp_path: Path
) -> None:
    config = base_config(emulator, redis_server)
    config["quotas"] = {"projects": {"*": {"per_minute": 15}}, "profiles": {"default": {"per_user_per_minute": 4}}}
    async with gateways(2, config, tmp_path) as stubs:
        subs = [f"{i:02d}" * 40 for i in range(10)]  # ten users, so the per-user window is not what stops them
        outcomes = await asyncio.gather(
            *(_outcome(stubs[i % 2].Send(send_request(sub=subs[i % 10]), timeout=10)) for i in range(40))
        )
        # One user: their own window (4 a minute) refuses before the project's runs out.
        other_project = [
            await _outcome(stubs[i % 2].Send(send_request(project_id="p2", sub=subs[0]), timeout=10)) for i in range(6)
        ]
        sends = await admin.sends()
    codes = Counter(code for code, _ in outcomes)
    assert codes == {"OK": 15, "RESOURCE_EXHAUSTED": 25}
    for code, err in outcomes:
        if code != "OK":
            assert err.reason == "ERROR_REASON_GATEWAY_QUOTA_EXCEEDED"
            assert err.retry_after_s is not None
            assert 0 < err.retry_after_s <= 60
            assert [v[0] for v in err.quota_violations] == ["project:" + send_request().project_id + ":per_minute"]
    assert [c for c, _ in other_project] == ["OK"] * 4 + ["RESOURCE_EXHAUSTED"] * 2
    assert other_project[-1][1].quota_violations[0][0] == "profile:default:per_user_per_minute"
    assert len(sends) == 15 + 4  # nothing refused reached SmartPush


async def test_a_callers_rate_is_shared_across_processes(
    emulator: EmulatorServer, admin: EmulatorAdmin, redis_server: RedisServer, tmp_path: Path
) -> None:
    signer = Signer(tmp_path)
    config = base_config(emulator, redis_server)
    config["auth"] = {"mode": "jwt", "jwt": {"jwks_file": str(signer.jwks), "issuer": ISSUER, "audience": AUDIENCE}}
    config["callers"] = {
        "billing": {
            "match": BILLING,
            "profiles": ["default"],
            "projects": ["*"],
            "templates": ["*"],
            "rate": {"per_second": 2, "burst": 10},
        }
    }
    metadata = (("authorization", f"Bearer {signer.token(BILLING)}"),)
    async with gateways(2, config, tmp_path) as stubs:
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(_outcome(stubs[i % 2].Send(send_request(), metadata=metadata, timeout=10)) for i in range(40))
        )
        elapsed = time.monotonic() - started
        sends = await admin.sends()
    ok = sum(code == "OK" for code, _ in outcomes)
    # The burst, plus what the rate refilled while the calls ran: one budget, not one per process.
    assert 10 <= ok <= 10 + int(2 * elapsed) + 1
    refused = [err for code, err in outcomes if code != "OK"]
    assert {(e.code.name, e.reason) for e in refused} == {("RESOURCE_EXHAUSTED", "ERROR_REASON_CALLER_RATE_LIMITED")}
    assert all(e.retry_after_s is not None and 0 < e.retry_after_s <= 20 for e in refused)
    assert len(sends) == ok


@pytest.mark.slow
async def test_a_burst_against_a_slow_smartpush_is_shed_not_left_to_time_out(tmp_path: Path) -> None:
    # SmartPush (the emulator) in a process of its own, so the 2,000 callers here do not slow it.
    emulator_listen = f"127.0.0.1:{free_port()}"
    config: dict[str, Any] = {
        "smartpush": {"base_url": f"http://{emulator_listen}"},
        "profiles": {"default": {"client_id": DEMO_CLIENT_ID, "secret": DEMO_SECRET}},
        "auth": {"mode": "none"},
        "state": {"sqlite_path": str(tmp_path / "state.sqlite3")},
        "load": {"max_upstream_in_flight": 200, "retry_after_s": 0.5},
    }
    async with (
        process(CLI, "emulator", "--listen", emulator_listen, env=clean_env(), ready=b"emulator on"),
        gateways(1, config, tmp_path) as (stub,),
    ):
        admin = EmulatorAdmin(f"http://{emulator_listen}")
        await _outcome(stub.Send(send_request(), timeout=10))  # warm token and connection
        await admin.faults(latency_ms=2000, endpoint="send")
        deadline_s = 5.0
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(_outcome(stub.Send(send_request(idempotency_key=f"b{i}"), timeout=deadline_s)) for i in range(2000))
        )
        took = time.monotonic() - started
        await admin.faults()
        sends = await admin.sends()
        await admin.close()
    codes = Counter(code for code, _ in outcomes)
    assert "CANCELLED" not in codes
    assert took < deadline_s  # every call answered before its deadline
    assert set(codes) <= {"OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"}
    assert codes["OK"] >= 200  # the cap at once, and more as its sends finished while time was left
    reasons = Counter(err.reason for code, err in outcomes if code != "OK")
    # Refused at once (the cap), or, once SmartPush's pace is known, before being sent with too
    # little time left: never by the caller's own deadline passing.
    assert set(reasons) <= {"ERROR_REASON_OVERLOADED", "ERROR_REASON_DEADLINE_TOO_SHORT"}
    for code, err in outcomes:
        if code != "OK" and err.reason == "ERROR_REASON_OVERLOADED":
            assert err.retry_after_s == 0.5
    # No push reached SmartPush for a caller that was told it failed.
    delivered = {s["rq_uid"] for s in sends} - {sends[0]["rq_uid"]}
    assert len(delivered) == codes["OK"]
