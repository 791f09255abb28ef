"""The ceiling: a bare grpc.aio PushService built from the same proto that answers at once."""

from __future__ import annotations

import argparse
from typing import Any

import grpc
import uvloop
from smartpush.gateway.v1 import delivery_pb2, push_service_pb2, push_service_pb2_grpc

from gateway.heap import freeze_startup_heap

RESPONSE = push_service_pb2.SendResponse(
    rq_uid="00000000-0000-4000-8000-000000000000",
    response_id="echo",
    results=[push_service_pb2.DestinationResult(surface=delivery_pb2.SURFACE_COMPANION, reported=True)],
)


class Echo(push_service_pb2_grpc.PushServiceServicer):
    async def Send(self, request: Any, context: Any) -> Any:
        return RESPONSE

    async def SendBatch(self, request: Any, context: Any) -> Any:
        item = push_service_pb2.SendBatchResult(response=RESPONSE)
        return push_service_pb2.SendBatchResponse(results=[item] * len(request.requests))


async def serve(servicer: push_service_pb2_grpc.PushServiceServicer, listen: str) -> None:
    """A bare grpc.aio server for one PushService; says `ready` on stdout, runs until killed."""
    server = grpc.aio.server()
    push_service_pb2_grpc.add_PushServiceServicer_to_server(servicer, server)
    server.add_insecure_port(listen)
    await server.start()
    freeze_startup_heap()  # as the gateway does before it serves: the references run the same way
    print("ready", flush=True)
    await server.wait_for_termination()


async def main(listen: str) -> None:
    await serve(Echo(), listen)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    uvloop.run(main(parser.parse_args().listen))
