"""SendBatch over a real gateway and the emulator over real HTTP: one result per item, in order."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from smartpush.gateway.v1 import delivery_pb2, push_service_pb2

from tests.conftest import GatewayFactory
from tests.helpers import EmulatorAdmin, async_stub, delivered, send_request


def _detail(status: status_pb2.Status, cls: Any) -> Any:
    for packed in status.details:
        assert isinstance(packed, any_pb2.Any)
        if packed.Is(cls.DESCRIPTOR):
            out = cls()
            packed.Unpack(out)
            return out
    return None


def _invalid(i: int) -> push_service_pb2.SendRequest:
    request = send_request(idempotency_key=f"item-{i}", sub=f"{i:04d}" * 20)
    request.delivery.template_content.mobile_app_parameters.button_text = "x" * 31  # over 30
    return request


async def test_a_batch_answers_each_item_in_order_and_delivers_each_once(
    make_gateway: GatewayFactory, admin: EmulatorAdmin
) -> None:
    # 30 % of sends fail at random (the emulator's faults are unseeded): with 8 attempts one of the
    # 195 items exhausted them about once in 80 runs (0.3**8 * 195); with 16, once in ~10**6.
    gw = await make_gateway(smartpush={"max_attempts": 16, "backoff_max_s": 0.2})
    invalid = {7, 50, 51, 133, 199}
    requests = [
        _invalid(i) if i in invalid else send_request(idempotency_key=f"item-{i}", sub=f"{i:04d}" * 20)
        for i in range(200)
    ]
    async with grpc.aio.insecure_channel(gw.address) as channel:
        stub = async_stub(channel)
        await stub.Send(send_request(), timeout=5)  # warm token
        await admin.faults(error_rates={"503": 0.3}, endpoint="send")
        started = time.monotonic()
        reply = await stub.SendBatch(push_service_pb2.SendBatchRequest(requests=requests), timeout=30)
        took = time.monotonic() - started
        await admin.faults()
        sends = await admin.sends()
    assert took < 30
    assert len(reply.results) == 200
    once = delivered(sends)
    assert sum(1 for s in sends if s["status"] == 503) > 20  # the fault really bit
    for i, result in enumerate(reply.results):
        if i in invalid:
            assert result.status.code == code_pb2.INVALID_ARGUMENT, i
            bad = _detail(result.status, error_details_pb2.BadRequest)
            assert [v.field for v in bad.field_violations] == [
                "delivery.template_content.mobile_app_parameters.button_text"
            ]
            info = _detail(result.status, error_details_pb2.ErrorInfo)
            assert info.reason == "ERROR_REASON_INVALID_REQUEST"
        else:
            assert result.status.code == code_pb2.OK, (i, result.status.message)
            assert result.response.results[0].surface == delivery_pb2.SURFACE_COMPANION
            assert once.get(result.response.rq_uid) == 1, i
    assert len(once) == 1 + 200 - len(invalid)  # the warm-up and every valid item, once


async def test_a_retried_batch_replays_what_was_sent(make_gateway: GatewayFactory, admin: EmulatorAdmin) -> None:
    gw = await make_gateway()
    requests = [send_request(idempotency_key=f"again-{i}", sub=f"{i:04d}" * 20) for i in range(20)]
    async with grpc.aio.insecure_channel(gw.address) as channel:
        stub = async_stub(channel)
        first = await stub.SendBatch(push_service_pb2.SendBatchRequest(requests=requests), timeout=10)
        again = await stub.SendBatch(push_service_pb2.SendBatchRequest(requests=requests), timeout=10)
    assert [r.response.replayed for r in first.results] == [False] * 20
    assert [r.response.replayed for r in again.results] == [True] * 20
    assert len(await admin.sends()) == 20


async def test_items_that_cannot_finish_in_time_are_reported_not_left_hanging(
    make_gateway: GatewayFactory, admin: EmulatorAdmin
) -> None:
    gw = await make_gateway()
    async with grpc.aio.insecure_channel(gw.address) as channel:
        stub = async_stub(channel)
        await stub.Send(send_request(), timeout=5)
        await admin.faults(latency_ms=800, endpoint="send")
        requests = [send_request(sub=f"{i:04d}" * 20) for i in range(100)]  # 32 at a time: 4 waves
        started = time.monotonic()
        reply = await stub.SendBatch(push_service_pb2.SendBatchRequest(requests=requests), timeout=2.0)
        took = time.monotonic() - started
        await admin.faults()
    assert took < 2.0  # the batch itself answered in time
    codes = [r.status.code for r in reply.results]
    assert code_pb2.OK in codes
    assert code_pb2.DEADLINE_EXCEEDED in codes
    assert set(codes) <= {code_pb2.OK, code_pb2.DEADLINE_EXCEEDED}


async def test_a_malformed_batch_fails_as_a_whole(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    async with grpc.aio.insecure_channel(gw.address) as channel:
        stub = async_stub(channel)
        for requests in ([], [send_request()] * 1001):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.SendBatch(push_service_pb2.SendBatchRequest(requests=requests), timeout=5)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
