"""One gateway, many processes, with real processes and a real Redis: three replicas sharing one
Redis, and `serve --workers 2` sharing one SQLite file. Whichever process a call lands on, a key is
delivered upstream once, consent is the same, and a store outage fails keyed sends closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from smartpush.gateway.v1 import permission_service_pb2, permission_service_pb2_grpc, push_service_pb2
from smartpush_gateway_client.errors import decode

from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET, EmulatorServer
from gateway.readiness import STATE_STORE
from tests import seed_examples as seeds
from tests.helpers import (
    CLI,
    PROJECT,
    SUB,
    EmulatorAdmin,
    RedisServer,
    async_stub,
    clean_env,
    delivered,
    free_port,
    process,
    send_request,
)

# A channel of its own per stub: a new connection, so the kernel may hand it to either worker.
_OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)]


@dataclass
class Fleet:
    """Gateway processes and one channel per process (or, for workers, several to one port)."""

    targets: list[str]
    channels: list[grpc.aio.Channel]

    @property
    def stubs(self) -> list[Any]:
        return [async_stub(ch) for ch in self.channels]


def _env(emulator: EmulatorServer, **settings: str) -> dict[str, str]:
    return clean_env(
        SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URL=emulator.url,
        SMARTPUSH_GATEWAY_PROFILES__DEFAULT__CLIENT_ID=DEMO_CLIENT_ID,
        SMARTPUSH_GATEWAY_PROFILES__DEFAULT__SECRET=DEMO_SECRET,
        SMARTPUSH_GATEWAY_LOG_FORMAT="json",
        **settings,
    )


def redis_env(emulator: EmulatorServer, redis: RedisServer, **settings: str) -> dict[str, str]:
    return _env(
        emulator, SMARTPUSH_GATEWAY_STATE__BACKEND="redis", SMARTPUSH_GATEWAY_STATE__REDIS_URL=redis.url, **settings
    )


@contextlib.asynccontextmanager
async def replicas(count: int, env: dict[str, str]) -> AsyncIterator[Fleet]:
    """`count` separate `serve` processes, each on its own port."""
    targets = [f"127.0.0.1:{free_port()}" for _ in range(count)]
    async with contextlib.AsyncExitStack() as stack:
        for target in targets:
            await stack.enter_async_context(process(CLI, "serve", "--listen", target, env=env, ready=b"listening"))
        channels = [
            await stack.enter_async_context(grpc.aio.insecure_channel(t, options=_OWN_CONNECTION)) for t in targets
        ]
        yield Fleet(targets, channels)


@contextlib.asynccontextmanager
async def workers(env: dict[str, str], channels: int = 8) -> AsyncIterator[Fleet]:
    """`serve --workers 2` on one port, with `channels` connections to it."""
    target = f"127.0.0.1:{free_port()}"
    argv = (CLI, "serve", "--workers", "2", "--listen", target)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(process(*argv, env=env, ready=b"(2 workers)"))
        opened = [
            await stack.enter_async_context(grpc.aio.insecure_channel(target, options=_OWN_CONNECTION))
            for _ in range(channels)
        ]
        yield Fleet([target], opened)


@contextlib.asynccontextmanager
async def fleet_of(kind: str, emulator: EmulatorServer, redis: RedisServer, tmp_path: Path) -> AsyncIterator[Fleet]:
    if kind == "redis-replicas":
        async with replicas(3, redis_env(emulator, redis)) as fleet:
            yield fleet
    else:
        async with workers(_env(emulator, SMARTPUSH_GATEWAY_STATE__SQLITE_PATH=str(tmp_path / "s.sqlite3"))) as fleet:
            yield fleet


async def _refusal(call: Any) -> tuple[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code().name, decode(caught.value).reason


def _deliveries(sends: list[dict[str, Any]], rq_uid: str) -> int:
    return delivered(sends).get(rq_uid, 0)


@pytest.mark.parametrize("kind", ["redis-replicas", "sqlite-workers"])
async def test_a_key_is_delivered_once_whichever_process_gets_it(
    kind: str, emulator: EmulatorServer, admin: EmulatorAdmin, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with fleet_of(kind, emulator, redis_server, tmp_path) as fleet:
        stubs = fleet.stubs
        request = send_request(idempotency_key="order-1")
        first: push_service_pb2.SendResponse = await stubs[0].Send(request, timeout=10)
        assert not first.replayed
        repeats = [await stub.Send(request, timeout=10) for stub in stubs[1:] + stubs[:1]]
        assert all(r.replayed and r.response_id == first.response_id for r in repeats)

        different = send_request(idempotency_key="order-1", callback_url="https://example.org/other")
        refusals = [await _refusal(stub.Send(different, timeout=10)) for stub in stubs]
        assert set(refusals) == {("FAILED_PRECONDITION", "ERROR_REASON_IDEMPOTENCY_KEY_REUSED")}

        burst = send_request(idempotency_key="order-2")
        answers = await asyncio.gather(*(stubs[i % len(stubs)].Send(burst, timeout=20) for i in range(100)))
        assert sum(not a.replayed for a in answers) == 1
        assert len({a.response_id for a in answers}) == 1
        sends = await admin.sends()
    assert _deliveries(sends, first.rq_uid) == 1
    assert _deliveries(sends, answers[0].rq_uid) == 1
    assert len(sends) == 2


@pytest.mark.parametrize("kind", ["redis-replicas", "sqlite-workers"])
async def test_message_ids_are_unique_across_processes(
    kind: str, emulator: EmulatorServer, admin: EmulatorAdmin, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with fleet_of(kind, emulator, redis_server, tmp_path) as fleet:
        stubs = fleet.stubs
        await asyncio.gather(*(stubs[i % len(stubs)].Send(send_request(), timeout=20) for i in range(300)))
        sends = await admin.sends()
    ids = [s["body"]["requestPayload"]["messageId"] for s in sends]
    assert len(ids) == 300
    assert len(set(ids)) == 300


async def test_a_send_outliving_its_caller_is_recorded_and_the_retry_replayed(
    emulator: EmulatorServer, admin: EmulatorAdmin, redis_server: RedisServer
) -> None:
    async with replicas(2, redis_env(emulator, redis_server)) as fleet:
        a, b = fleet.stubs
        await a.Send(send_request(), timeout=10)  # tokens are warm
        await admin.faults(latency_ms=1500, endpoint="send")
        request = send_request(idempotency_key="slow-1")
        assert (await _refusal(a.Send(request, timeout=0.5)))[0] == "DEADLINE_EXCEEDED"
        retried = await b.Send(request, timeout=10)  # lands while the first is still sending
        again = await a.Send(request, timeout=10)  # and after it finished
        await admin.faults()
        sends = await admin.sends()
    assert retried.replayed
    assert again.replayed
    assert _deliveries(sends, retried.rq_uid) == 1


async def _record_consent(channel: grpc.aio.Channel) -> None:
    stub: Any = permission_service_pb2_grpc.PermissionServiceStub(channel)
    await stub.RecordConsent(
        permission_service_pb2.RecordConsentRequest(
            project_id=PROJECT, sub=SUB, message_json=json.dumps(seeds.TAKE_RUNTIME_PERMISSIONS)
        ),
        timeout=10,
    )


@pytest.mark.parametrize("kind", ["redis-replicas", "sqlite-workers"])
async def test_consent_recorded_anywhere_is_enforced_everywhere_and_survives_restarts(
    kind: str, emulator: EmulatorServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    env_extra = {"SMARTPUSH_GATEWAY_REQUIRE_CONSENT": "true"}
    path = str(tmp_path / "s.sqlite3")

    @contextlib.asynccontextmanager
    async def start() -> AsyncIterator[Fleet]:
        if kind == "redis-replicas":
            async with replicas(2, redis_env(emulator, redis_server, **env_extra)) as fleet:
                yield fleet
        else:
            env = _env(emulator, SMARTPUSH_GATEWAY_STATE__SQLITE_PATH=path, **env_extra)
            async with workers(env) as fleet:
                yield fleet

    async with start() as fleet:
        stubs = fleet.stubs
        refused = [await _refusal(stub.Send(send_request(), timeout=10)) for stub in stubs]
        assert set(refused) == {("FAILED_PRECONDITION", "ERROR_REASON_CONSENT_MISSING")}
        await _record_consent(fleet.channels[0])
        for stub in stubs:
            await stub.Send(send_request(), timeout=10)
    async with start() as fleet:  # every process restarted
        for stub in fleet.stubs:
            await stub.Send(send_request(), timeout=10)


async def test_redis_outage_fails_keyed_sends_closed_and_service_resumes(
    emulator: EmulatorServer, admin: EmulatorAdmin, redis_server: RedisServer
) -> None:
    env = redis_env(emulator, redis_server, SMARTPUSH_GATEWAY_READINESS_INTERVAL_S="0.2")
    async with replicas(2, env) as fleet:
        stubs = fleet.stubs
        health: Any = health_pb2_grpc.HealthStub(fleet.channels[0])
        await stubs[0].Send(send_request(idempotency_key="before"), timeout=10)
        await redis_server.stop()

        for stub in stubs:
            assert await _refusal(stub.Send(send_request(idempotency_key="during"), timeout=10)) == (
                "UNAVAILABLE",
                "ERROR_REASON_STATE_STORE_UNAVAILABLE",
            )
            assert not (await stub.Send(send_request(), timeout=10)).replayed  # keyless sends go on
        state = await _wait_for_health(health, health_pb2.HealthCheckResponse.NOT_SERVING)
        overall = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert overall.status == health_pb2.HealthCheckResponse.SERVING  # the replica stays in
        assert state == health_pb2.HealthCheckResponse.NOT_SERVING

        await redis_server.start()  # same port, no gateway restart
        resumed = [await stub.Send(send_request(idempotency_key="after"), timeout=10) for stub in stubs]
        assert [r.replayed for r in resumed] == [False, True]
        await _wait_for_health(health, health_pb2.HealthCheckResponse.SERVING)
        sends = await admin.sends()
    assert _deliveries(sends, resumed[0].rq_uid) == 1
    assert len(sends) == 1 + 2 + 1  # before, two keyless, after: nothing for the refused ones


async def _wait_for_health(health: Any, want: int) -> int:
    async with asyncio.timeout(10):
        while True:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=STATE_STORE), timeout=5)
            if reply.status == want:
                return int(reply.status)
            await asyncio.sleep(0.1)
