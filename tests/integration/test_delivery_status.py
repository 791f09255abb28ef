"""Delivery statuses end to end: the gateway points callbackUrl at its receiver, the emulator calls
back over real HTTP, and DeliveryService answers and streams what arrived."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
import pytest
from smartpush.gateway.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from smartpush_gateway_client.errors import decode

from gateway.server import Gateway
from tests.conftest import GatewayFactory
from tests.helpers import EmulatorAdmin, async_stub, free_port, http_server, send_request

pb = delivery_service_pb2


@pytest.fixture
async def receiving(make_gateway: GatewayFactory) -> tuple[Gateway, str]:
    port = free_port()
    public = f"http://127.0.0.1:{port}/smartpush/callbacks"
    gw = await make_gateway(callbacks={"enabled": True, "listen": f"127.0.0.1:{port}", "public_url": public})
    return gw, public


async def _until(check: Any, within_s: float = 10.0) -> Any:
    async with asyncio.timeout(within_s):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.05)


async def test_the_emulator_calls_back_and_the_status_is_served_and_streamed(
    receiving: tuple[Gateway, str], admin: EmulatorAdmin
) -> None:
    gw, public = receiving
    async with grpc.aio.insecure_channel(gw.address) as channel:
        stub = async_stub(channel)
        delivery: Any = delivery_service_pb2_grpc.DeliveryServiceStub(channel)
        watch = delivery.WatchDeliveryStatus(pb.WatchDeliveryStatusRequest(), timeout=15)  # the caller's own sends
        await asyncio.sleep(0.3)
        sent = await stub.Send(send_request(delivery_pb2.SURFACE_COMPANION, delivery_pb2.SURFACE_SBERBOX), timeout=5)
        (request,) = await admin.sends()
        assert request["callback_url"].startswith(public + "/")  # SmartPush calls the gateway back

        async def delivered() -> Any:
            reply = await delivery.GetDeliveryStatus(pb.GetDeliveryStatusRequest(rq_uid=sent.rq_uid), timeout=5)
            status = reply.status
            done = status.callbacks_received == 2 and all(s.devices for s in status.surfaces)
            return status if done else None

        status = await _until(delivered)
        streamed = []
        async for update in watch:
            streamed.append(update.status)
            if update.status.callbacks_received == 2:
                break
        watch.cancel()
    assert [s.raw_surface for s in status.surfaces] == ["COMPANION"]  # BROADCAST: the emulator delivers the first
    (surface,) = status.surfaces
    assert (surface.surface, surface.status_code, surface.description) == (
        delivery_pb2.SURFACE_COMPANION,
        0,
        "delivered",
    )
    (device,) = surface.devices
    assert device.product == "companion"
    assert device.device_id
    assert status.sent_at.seconds > 0
    assert [u.rq_uid for u in streamed] == [sent.rq_uid] * len(streamed)
    assert streamed[-1].surfaces[0].devices[0].device_id == device.device_id


@pytest.mark.parametrize("fault", ["duplicate", "out_of_order"])
async def test_duplicate_and_out_of_order_callbacks_keep_the_latest_status(
    receiving: tuple[Gateway, str], admin: EmulatorAdmin, fault: str
) -> None:
    gw, _ = receiving
    await admin.config(callbacks={"enabled": True, "delay_ms": 20, "fault": fault, "attempts": 3})
    async with grpc.aio.insecure_channel(gw.address) as channel:
        sent = await async_stub(channel).Send(send_request(), timeout=5)
        delivery: Any = delivery_service_pb2_grpc.DeliveryServiceStub(channel)
        expected = 4 if fault == "duplicate" else 2

        async def arrived() -> Any:
            reply = await delivery.GetDeliveryStatus(pb.GetDeliveryStatusRequest(rq_uid=sent.rq_uid), timeout=5)
            return reply.status if reply.status.callbacks_received == expected else None

        status = await _until(arrived)
    (surface,) = status.surfaces
    # `delivered` (the later timestamp) wins, even when `sent` arrived after it.
    assert (surface.description, len(surface.devices)) == ("delivered", 1)


async def test_forged_or_unknown_callbacks_are_refused(receiving: tuple[Gateway, str], admin: EmulatorAdmin) -> None:
    gw, public = receiving
    await admin.config(callbacks={"enabled": False})
    async with grpc.aio.insecure_channel(gw.address) as channel:
        sent = await async_stub(channel).Send(send_request(), timeout=5)
        delivery: Any = delivery_service_pb2_grpc.DeliveryServiceStub(channel)
        (request,) = await admin.sends()
        real = request["callback_url"]
        body = {"payload": {"result": {"surface": "COMPANION", "status": {"code": 0, "description": "delivered"}}}}
        async with httpx.AsyncClient() as http:
            forged = await http.post(f"{public}/{'A' * 32}", json=body)
            too_big = await http.post(real, content=b"{" + b" " * (70 * 1024) + b"}")
            garbage = await http.post(real, content=b"not json")
            genuine = await http.post(real, json=body)
        assert (forged.status_code, too_big.status_code, garbage.status_code, genuine.status_code) == (
            404,
            413,
            400,
            200,
        )
        reply = await delivery.GetDeliveryStatus(pb.GetDeliveryStatusRequest(rq_uid=sent.rq_uid), timeout=5)
        assert reply.status.callbacks_received == 1
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await delivery.GetDeliveryStatus(pb.GetDeliveryStatusRequest(rq_uid="not-a-send"), timeout=5)
        err = decode(caught.value)
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "ERROR_REASON_DELIVERY_STATUS_UNKNOWN")


async def test_with_the_receiver_off_the_callers_callback_url_is_forwarded(
    make_gateway: GatewayFactory, admin: EmulatorAdmin
) -> None:
    gw = await make_gateway()
    async with grpc.aio.insecure_channel(gw.address) as channel:
        await async_stub(channel).Send(send_request(callback_url="https://caller.example/statuses"), timeout=5)
    (request,) = await admin.sends()
    assert request["callback_url"] == "https://caller.example/statuses"


async def test_the_emulator_retries_a_failing_receiver(make_gateway: GatewayFactory, admin: EmulatorAdmin) -> None:
    from aiohttp import web

    answers = [503, 503, 200, 200]
    seen: list[int] = []
    all_in = asyncio.Event()

    async def flaky(_: web.Request) -> web.Response:
        status = answers[len(seen)] if len(seen) < len(answers) else 200
        seen.append(status)
        if len(seen) >= len(answers):
            all_in.set()
        return web.Response(status=status)

    async with http_server("POST", "/cb", flaky) as url:
        await admin.config(callbacks={"enabled": True, "delay_ms": 10, "fault": "none", "attempts": 3})
        gw = await make_gateway()  # the receiver off: the caller's own URL is called back
        async with grpc.aio.insecure_channel(gw.address) as channel:
            await async_stub(channel).Send(send_request(callback_url=url), timeout=5)
        await asyncio.wait_for(all_in.wait(), 10)
    assert seen == [503, 503, 200, 200]  # `sent` after two retries, then `delivered`
