"""An unexpected failure in a servicer answers INTERNAL with its reason, never a bare UNKNOWN — for
unary and for server-streaming methods alike (one edge runs both), over a real grpc.aio server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from smartpush.gateway.v1 import delivery_service_pb2, delivery_service_pb2_grpc
from smartpush_gateway_client.errors import decode

from gateway.api.edge import Drain, Edge
from gateway.telemetry import Telemetry

_DELIVERY = delivery_service_pb2.DESCRIPTOR.services_by_name["DeliveryService"]


class Broken:
    async def GetDeliveryStatus(self, request: Any, context: Any) -> Any:
        raise RuntimeError("a bug")

    async def WatchDeliveryStatus(self, request: Any, context: Any) -> AsyncIterator[Any]:
        yield delivery_service_pb2.WatchDeliveryStatusResponse()
        raise RuntimeError("a bug, after the first answer")


@pytest.fixture
async def stub() -> AsyncIterator[Any]:
    server = grpc.aio.server()
    Edge(Telemetry.disabled(), Drain()).register(server, _DELIVERY, Broken())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield delivery_service_pb2_grpc.DeliveryServiceStub(channel)  # used as the .pyi's async stub
    await server.stop(None)


async def test_a_unary_failure_is_internal(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.GetDeliveryStatus(delivery_service_pb2.GetDeliveryStatusRequest(), timeout=5)
    err = decode(failed.value)
    assert (err.code, err.reason) == (grpc.StatusCode.INTERNAL, "ERROR_REASON_INTERNAL")
    assert "a bug" not in (failed.value.details() or "")  # the exception's text stays in the log


async def test_a_streaming_failure_is_internal(stub: Any) -> None:
    answers: list[Any] = []

    async def watch() -> None:
        request = delivery_service_pb2.WatchDeliveryStatusRequest()
        async for answer in stub.WatchDeliveryStatus(request, timeout=5):
            answers.append(answer)

    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await watch()
    assert len(answers) == 1
    err = decode(failed.value)
    assert (err.code, err.reason) == (grpc.StatusCode.INTERNAL, "ERROR_REASON_INTERNAL")
