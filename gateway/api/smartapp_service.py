"""SmartAppService: typed SmartApp structures <-> exact wire JSON, for every language."""

from __future__ import annotations

import json
from typing import Any

import grpc
from smartpush.gateway.v1 import smartapp_service_pb2, smartapp_service_pb2_grpc

from gateway.api.guard import guarded
from gateway.smartapp import codec

pb = smartapp_service_pb2
Context = grpc.aio.ServicerContext[object, object]


def _load(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise codec.CodecError("json", f"not JSON ({exc.msg})") from None


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


class SmartAppServicer(smartapp_service_pb2_grpc.SmartAppServiceServicer):
    async def EncodeCommand(self, request: pb.EncodeCommandRequest, context: Context) -> pb.EncodeCommandResponse:
        async def run() -> pb.EncodeCommandResponse:
            return pb.EncodeCommandResponse(json=_dump(codec.encode_command(request.command)))

        return await guarded(context, run(), "command.")

    async def DecodeCommand(self, request: pb.DecodeCommandRequest, context: Context) -> pb.DecodeCommandResponse:
        async def run() -> pb.DecodeCommandResponse:
            return pb.DecodeCommandResponse(command=codec.decode_command(_load(request.json)))

        return await guarded(context, run(), "json.")

    async def EncodeAction(self, request: pb.EncodeActionRequest, context: Context) -> pb.EncodeActionResponse:
        async def run() -> pb.EncodeActionResponse:
            return pb.EncodeActionResponse(json=_dump(codec.encode_action(request.action)))

        return await guarded(context, run(), "action.")

    async def DecodeAction(self, request: pb.DecodeActionRequest, context: Context) -> pb.DecodeActionResponse:
        async def run() -> pb.DecodeActionResponse:
            return pb.DecodeActionResponse(action=codec.decode_action(_load(request.json)))

        return await guarded(context, run(), "json.")

    async def DecodePayDialogFinished(
        self, request: pb.DecodePayDialogFinishedRequest, context: Context
    ) -> pb.DecodePayDialogFinishedResponse:
        async def run() -> pb.DecodePayDialogFinishedResponse:
            return pb.DecodePayDialogFinishedResponse(result=codec.decode_pay_dialog_finished(_load(request.json)))

        return await guarded(context, run(), "json.")
