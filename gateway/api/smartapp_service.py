"""SmartAppService: typed SmartApp structures <-> exact wire JSON, for every language."""

from __future__ import annotations

from typing import Any

import grpc
from smartpush.gateway.v1 import smartapp_service_pb2, smartapp_service_pb2_grpc

from gateway.smartapp import codec
from gateway.smartapp.codec_error import fields_under
from gateway.smartapp.json_input import dump_json, load_json

pb = smartapp_service_pb2
Context = grpc.aio.ServicerContext[Any, Any]


class SmartAppServicer(smartapp_service_pb2_grpc.SmartAppServiceServicer):
    async def EncodeCommand(self, request: pb.EncodeCommandRequest, context: Context) -> pb.EncodeCommandResponse:
        with fields_under("command."):
            return pb.EncodeCommandResponse(json=dump_json(codec.encode_command(request.command)))

    async def DecodeCommand(self, request: pb.DecodeCommandRequest, context: Context) -> pb.DecodeCommandResponse:
        with fields_under("json."):
            return pb.DecodeCommandResponse(command=codec.decode_command(load_json(request.json, "")))

    async def EncodeAction(self, request: pb.EncodeActionRequest, context: Context) -> pb.EncodeActionResponse:
        with fields_under("action."):
            return pb.EncodeActionResponse(json=dump_json(codec.encode_action(request.action)))

    async def DecodeAction(self, request: pb.DecodeActionRequest, context: Context) -> pb.DecodeActionResponse:
        with fields_under("json."):
            return pb.DecodeActionResponse(action=codec.decode_action(load_json(request.json, "")))

    async def DecodePayDialogFinished(
        self, request: pb.DecodePayDialogFinishedRequest, context: Context
    ) -> pb.DecodePayDialogFinishedResponse:
        with fields_under("json."):
            result = codec.decode_pay_dialog_finished(load_json(request.json, ""))
        return pb.DecodePayDialogFinishedResponse(result=result)

    async def DecodePermissionStates(
        self, request: pb.DecodePermissionStatesRequest, context: Context
    ) -> pb.DecodePermissionStatesResponse:
        with fields_under("json."):
            states = codec.decode_permission_states(load_json(request.json, ""))
        return pb.DecodePermissionStatesResponse(permissions=states)
