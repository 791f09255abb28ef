"""SmartApp wire JSON <-> typed protos: every seed example round-trips through the gRPC SmartAppService."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from smartpush.gateway.v1 import (
    permission_pb2,
    permission_service_pb2,
    permission_service_pb2_grpc,
    smartapp_pb2,
    smartapp_service_pb2,
)
from smartpush_gateway_client.errors import decode

from gateway.server import Gateway
from tests import seed_examples as seeds

svc = smartapp_service_pb2


@pytest.mark.parametrize("name", sorted(seeds.COMMANDS))
async def test_command_round_trip(smartapp: Any, name: str) -> None:
    original = seeds.COMMANDS[name]
    decoded = (await smartapp.DecodeCommand(svc.DecodeCommandRequest(json=json.dumps(original)), timeout=5)).command
    assert decoded.WhichOneof("command") == original["type"]
    encoded = await smartapp.EncodeCommand(svc.EncodeCommandRequest(command=decoded), timeout=5)
    assert json.loads(encoded.json) == original


@pytest.mark.parametrize("name", sorted(seeds.ACTIONS))
async def test_action_round_trip(smartapp: Any, name: str) -> None:
    original = seeds.ACTIONS[name]
    decoded = (await smartapp.DecodeAction(svc.DecodeActionRequest(json=json.dumps(original)), timeout=5)).action
    encoded = await smartapp.EncodeAction(svc.EncodeActionRequest(action=decoded), timeout=5)
    assert json.loads(encoded.json) == original


async def test_typed_fields_of_the_seed_examples(smartapp: Any) -> None:
    async def action(obj: dict[str, Any]) -> smartapp_pb2.Action:
        reply = await smartapp.DecodeAction(svc.DecodeActionRequest(json=json.dumps(obj)), timeout=5)
        result: smartapp_pb2.Action = reply.action
        return result

    text = (await action(seeds.ACTIONS["text_default_backend"])).text
    assert text.text == "Текст"
    assert not text.HasField("should_send_to_backend")  # absent on the wire: true by default
    run = (await action(seeds.RUN_APP)).server_action
    assert run.message_name == "RUN_APP"
    assert run.run_app.app_info == smartapp_pb2.AppInfo(
        project_id="example_456", application_id="app_456_ios", appversion_id="app_version_456"
    )
    assert run.run_app.payload["example_text"] == "Привет"
    generic = (await action(seeds.ACTIONS["server_action_default_name"])).server_action
    assert not generic.HasField("message_name")  # SERVER_ACTION by default
    assert generic.data["action_id"] == "BUY"
    cmd = await smartapp.DecodeCommand(svc.DecodeCommandRequest(json=json.dumps(seeds.COMMANDS["request_permissions"])))
    assert list(cmd.command.request_permissions.permissions) == [
        permission_pb2.PERMISSION_TYPE_GEO,
        permission_pb2.PERMISSION_TYPE_READ_CONTACTS,
        permission_pb2.PERMISSION_TYPE_RECORD_AUDIO,
        permission_pb2.PERMISSION_TYPE_PUSH,
    ]


@pytest.mark.parametrize(
    ("wire", "typed"),
    [
        (0, smartapp_pb2.PAYMENT_RESPONSE_CODE_SUCCESS),
        (2, smartapp_pb2.PAYMENT_RESPONSE_CODE_USER_CLOSED),
        (7, smartapp_pb2.PAYMENT_RESPONSE_CODE_UNAVAILABLE_ON_SURFACE),
    ],
)
async def test_pay_dialog_finished(smartapp: Any, wire: int, typed: int) -> None:
    message = json.loads(json.dumps(seeds.PAY_DIALOG_FINISHED))
    message["payload"]["server_action"]["parameters"]["payment_response"]["response_code"] = wire
    reply = await smartapp.DecodePayDialogFinished(svc.DecodePayDialogFinishedRequest(json=json.dumps(message)))
    assert (reply.result.response_code, reply.result.raw_response_code) == (typed, wire)
    assert reply.result.invoice_id == "***ID****"
    assert reply.result.app_info.system_name == "**"


@pytest.mark.parametrize(
    ("rpc", "payload", "field"),
    [
        ("DecodeCommand", "not json", "json"),
        ("DecodeCommand", '{"type": 5}', "json.type"),
        ("DecodeCommand", "{}", "json.type"),
        ("DecodeCommand", '{"type": "request_permissions", "permissions": ["telepathy"]}', "json.permissions[0]"),
        ("DecodeCommand", '{"type": "smart_app_error", "smart_app_error": {"code": 1.5}}', "json.smart_app_error.code"),
        ("DecodeAction", '{"type": "send_contact_phone", "send_contact_phone": "12"}', "json.send_contact_phone"),
        ("DecodeAction", '{"type": "server_action", "server_action": {}, "mode": 1}', "json.mode"),
        ("DecodeAction", '{"type": "text"}', "json.text"),
        (
            "DecodeAction",
            '{"type": "text", "text": "x", "should_send_to_backend": "yes"}',
            "json.should_send_to_backend",
        ),
        ("DecodePayDialogFinished", '{"action_id": "OTHER"}', "json.action_id"),
    ],
)
async def test_malformed_input_names_the_key(smartapp: Any, rpc: str, payload: str, field: str) -> None:
    request = getattr(svc, f"{rpc}Request")(json=payload)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(smartapp, rpc)(request, timeout=5)
    err = decode(caught.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.field_violations] == [field]


async def test_build_permission_request(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(gateway.address) as ch:
        stub: Any = permission_service_pb2_grpc.PermissionServiceStub(ch)
        reply = await stub.BuildPermissionRequest(
            permission_service_pb2.BuildPermissionRequestRequest(
                session_id="0062530b-5521-42cc-90b0-a9d65dea4e98",
                message_id=1,
                user=permission_pb2.UserIds(user_channel="B2C", sub="the-sub", user_id="the-user"),
            ),
            timeout=5,
        )
    assert json.loads(reply.get_runtime_permissions_json) == {
        "messageName": "GET_RUNTIME_PERMISSIONS",
        "sessionId": "0062530b-5521-42cc-90b0-a9d65dea4e98",
        "messageId": 1,
        "uuid": {"userChannel": "B2C", "sub": "the-sub", "userId": "the-user"},
        "payload": {"server_action": {"parameters": {"need_actions": {"types": ["service_push"]}}}},
    }
    assert json.loads(reply.request_permissions_command_json) == {
        "type": "request_permissions",
        "permissions": ["push"],
    }
    assert list(reply.request_permissions_command.permissions) == [permission_pb2.PERMISSION_TYPE_PUSH]
