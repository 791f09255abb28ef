"""`GatewayClient`: an async PushService client that raises decoded errors."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import grpc
from smartpush.gateway.v1 import push_service_pb2, push_service_pb2_grpc

from smartpush_gateway_client.channel import ChannelPool, TLSOptions
from smartpush_gateway_client.errors import decode

if TYPE_CHECKING:
    from smartpush.gateway.v1.push_service_pb2_grpc import PushServiceAsyncStub


class GatewayClient:
    """`async with GatewayClient("gateway:50051") as client: await client.send(request)`."""

    def __init__(
        self,
        target: str,
        *,
        channels: int = 1,
        tls: TLSOptions | None = None,
        keepalive_s: float = 60.0,
        retry_attempts: int = 3,
        default_timeout_s: float = 10.0,
    ) -> None:
        self._pool = ChannelPool(target, channels, tls=tls, keepalive_s=keepalive_s, retry_attempts=retry_attempts)
        self._stubs: list[PushServiceAsyncStub] = [
            push_service_pb2_grpc.PushServiceStub(ch) for ch in self._pool.channels
        ]
        self._turn = 0
        self._timeout = default_timeout_s

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._pool.close()

    async def send(
        self, request: push_service_pb2.SendRequest, *, timeout_s: float | None = None
    ) -> push_service_pb2.SendResponse:
        """Send; raises `GatewayCallError`. Adds an idempotency key so channel retries never send twice."""
        if not request.idempotency_key and not request.validate_only:
            keyed = push_service_pb2.SendRequest()
            keyed.CopyFrom(request)
            keyed.idempotency_key = str(uuid.uuid4())
            request = keyed
        stub = self._stubs[self._turn % len(self._stubs)]
        self._turn += 1
        try:
            return await stub.Send(request, timeout=timeout_s or self._timeout)
        except grpc.RpcError as err:
            raise decode(err) from None
