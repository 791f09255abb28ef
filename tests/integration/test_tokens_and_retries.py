"""Token cache and refresh, 401 handling, retries with the same RqUID, and the caller's deadline."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from smartpush.gateway.v1 import delivery_pb2 as d
from smartpush_gateway_client.errors import decode

from tests.conftest import GatewayFactory
from tests.helpers import AsyncStub, EmulatorAdmin, ShiftClock, async_stub, send_request


async def test_200_concurrent_sends_on_a_cold_gateway_cause_one_token_request(
    stub: AsyncStub, admin: EmulatorAdmin
) -> None:
    results = await asyncio.gather(
        *(stub.Send(send_request(d.SURFACE_COMPANION, sub=f"user-{i}"), timeout=20) for i in range(200))
    )
    assert all(r.results[0].status_code == 0 for r in results)
    stats = await admin.stats()
    assert stats["token"] == 1
    assert stats["send"] == 200


async def test_token_near_expiry_is_refreshed_ahead_of_time(make_gateway: GatewayFactory, admin: EmulatorAdmin) -> None:
    await admin.config(token_ttl_s=100)
    clock = ShiftClock()
    gw = await make_gateway(clock=clock)
    async with grpc.aio.insecure_channel(gw.address) as ch:
        stub = async_stub(ch)
        await stub.Send(send_request(), timeout=5)
        clock.offset = 50.0  # half the lifetime: still fresh
        await stub.Send(send_request(), timeout=5)
        assert (await admin.stats())["token"] == 1
        clock.offset = 85.0  # past 80 %: served from cache, refreshed in the background
        await stub.Send(send_request(), timeout=5)
        provider = gw.tokens.named["default"]
        for _ in range(100):
            if provider.refreshes == 2:
                break
            await asyncio.sleep(0.01)
        assert (await admin.stats())["token"] == 2
        await stub.Send(send_request(), timeout=5)
    stats = await admin.stats()
    assert stats["token"] == 2
    assert stats.get("send:401", 0) == 0  # no call ever waited for, or failed on, an expired token


async def test_expires_at_in_seconds_is_understood(make_gateway: GatewayFactory, admin: EmulatorAdmin) -> None:
    await admin.config(expires_at_unit="s", token_ttl_s=600)
    gw = await make_gateway()
    async with grpc.aio.insecure_channel(gw.address) as ch:
        stub = async_stub(ch)
        for _ in range(3):
            await stub.Send(send_request(), timeout=5)
    assert (await admin.stats())["token"] == 1


async def test_401_causes_one_refresh_and_one_retry(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    await stub.Send(send_request(), timeout=5)
    await admin.expire_tokens()
    response = await stub.Send(send_request(), timeout=5)
    assert response.results[0].status_code == 0
    stats = await admin.stats()
    assert (stats["token"], stats["send:401"], stats["send:200"]) == (2, 1, 2)
    last_two = (await admin.sends())[-2:]
    assert [r["status"] for r in last_two] == [401, 200]
    assert {r["rq_uid"] for r in last_two} == {response.rq_uid}


async def test_persistent_401_is_unavailable_upstream_auth(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    await admin.next_fault(http_status=401, count=2)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(send_request(), timeout=5)
    err = decode(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "ERROR_REASON_UPSTREAM_AUTH")
    assert len(await admin.sends()) == 2
    assert (await admin.stats())["token"] == 2


async def test_503_is_retried_with_the_same_rq_uid(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    await admin.next_fault(http_status=503, count=2)
    response = await stub.Send(send_request(), timeout=5)
    sends = await admin.sends()
    assert [s["status"] for s in sends] == [503, 503, 200]
    assert {s["rq_uid"] for s in sends} == {response.rq_uid}


async def test_dropped_connection_is_retried(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    await admin.next_fault(drop=True)
    response = await stub.Send(send_request(), timeout=5)
    assert response.results[0].status_code == 0
    assert (await admin.stats())["send:dropped"] == 1
    assert len(await admin.sends()) == 2


async def test_429_honours_retry_after(make_gateway: GatewayFactory, admin: EmulatorAdmin) -> None:
    clock = ShiftClock()  # sleeps advance the clock instead of waiting
    gw = await make_gateway(clock=clock)
    await admin.next_fault(http_status=429, retry_after_s=3)
    async with grpc.aio.insecure_channel(gw.address) as ch:
        response = await async_stub(ch).Send(send_request(), timeout=30)
    sends = await admin.sends()
    assert [s["status"] for s in sends] == [429, 200]
    assert {s["rq_uid"] for s in sends} == {response.rq_uid}
    assert clock.sleeps
    assert clock.sleeps[0] >= 3.0


async def test_retry_after_beyond_the_deadline_is_not_waited_for(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    await admin.next_fault(http_status=429, retry_after_s=30)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(send_request(), timeout=2)
    err = decode(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "ERROR_REASON_UPSTREAM_RATE_LIMITED")
    assert err.retry_after_s == 30.0
    assert len(await admin.sends()) == 1


async def test_5xx_until_attempts_run_out_is_unavailable(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    await admin.next_fault(http_status=502, count=10, retry_after_s=0)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(send_request(), timeout=10)
    err = decode(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "ERROR_REASON_UPSTREAM_UNAVAILABLE")
    assert err.metadata["attempts"] == "4"
    assert len(await admin.sends()) == 4


async def test_deadline_shorter_than_upstream_latency(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    await stub.Send(send_request(), timeout=5)  # warm token
    await admin.next_fault(latency_ms=1500)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(send_request(), timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_idempotency_key_replays_and_guards(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    first = await stub.Send(send_request(idempotency_key="order-42"), timeout=5)
    again = await stub.Send(send_request(idempotency_key="order-42"), timeout=5)
    assert (first.replayed, again.replayed) == (False, True)
    assert again.rq_uid == first.rq_uid
    assert again.response_id == first.response_id
    assert len(await admin.sends()) == 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(send_request(d.SURFACE_SBERBOX, idempotency_key="order-42"), timeout=5)
    assert decode(caught.value).reason == "ERROR_REASON_IDEMPOTENCY_KEY_REUSED"
    # A failed call is not remembered: the same key can be retried.
    await admin.next_fault(status_code=1013)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Send(send_request(idempotency_key="order-43"), timeout=5)
    assert (await stub.Send(send_request(idempotency_key="order-43"), timeout=5)).replayed is False


async def test_a_repeat_waits_for_the_running_send_then_gives_up_with_a_retry_delay(
    stub: AsyncStub, admin: EmulatorAdmin
) -> None:
    await stub.Send(send_request(), timeout=5)  # warm token
    await admin.next_fault(latency_ms=1500)
    request = send_request(idempotency_key="order-77")
    first = asyncio.ensure_future(stub.Send(request, timeout=10))
    await asyncio.sleep(0.3)  # the first is at SmartPush
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(request, timeout=0.5)
    err = decode(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.ABORTED, "ERROR_REASON_IDEMPOTENCY_IN_PROGRESS")
    assert err.retry_after_s is not None
    assert err.retry_after_s > 0
    waited = await stub.Send(request, timeout=10)  # long enough: waits, then replays
    assert not (await first).replayed
    assert waited.replayed
    assert len([s for s in await admin.sends() if s["rq_uid"] == waited.rq_uid]) == 1
