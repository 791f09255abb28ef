"""SmartApp fidelity over the real SmartAppService: what salutejs defines round-trips as exact JSON text,
readers keep what they do not model, writers refuse what the wire requires and the proto leaves empty."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from smartpush.gateway.v1 import (
    permission_pb2,
    permission_service_pb2,
    permission_service_pb2_grpc,
    smartapp_pb2,
    smartapp_service_pb2,
)
from smartpush_gateway_client.errors import decode

from gateway.server import Gateway

svc = smartapp_service_pb2

# What the assistant sends in payload.app_info (salutejs AppInfo): frontendType is required there.
REAL_APP_INFO: dict[str, Any] = {
    "projectId": "0b2bd2d8-5c36-4f9a-8c1b-2d3b7f9e1a10",
    "applicationId": "7c9b0d4e-2f1a-4b3c-9d8e-1a2b3c4d5e6f",
    "appversionId": "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b",
    "frontendEndpoint": "https://shop.example/smartapp/",
    "frontendType": "WEB_APP",
    "systemName": "shop",
    "frontendStateId": "0b2bd2d8_7c9b0d4e_e1f2a3b4",
    "affiliationType": "PARTNERSHIP",
    "appearance": {"header": {"title": "Магазин", "icon": {"type": "local", "identificator": "bag"}}},
    "canvasType": "fullscreen",
    "c2bEnabled": False,
}

# One example of each action and command salutejs defines and the seeds do not show,
# written in the key order the gateway writes so that the text itself can be compared.
NEW_ACTIONS: dict[str, dict[str, Any]] = {
    "send_contact_phone": {
        "type": "send_contact_phone",
        "send_contact_phone": 42,
        "template": "Позвони [[placeholder]]",
    },
    "send_contact_phone_bare": {"type": "send_contact_phone", "send_contact_phone": 0},
    "copy_text_to_buffer": {"type": "copy_text_to_buffer", "text": "SBER-2026"},
    "open_keyboard": {"type": "open_keyboard"},
    "share_text": {"type": "share_text", "text": "Смотри, что нашёл"},
    "start_smart_search": {"type": "start_smart_search", "start_smart_search": {"query": "пицца", "timeoutMS": 3000}},
    "smartapp_text": {"type": "smartapp_text", "smartapp_text": "привет"},
    "server_action_background": {
        "type": "server_action",
        "message_name": "SERVER_ACTION",
        "mode": "background",
        "server_action": {"action_id": "PING"},
    },
}
NEW_COMMANDS: dict[str, dict[str, Any]] = {
    "smart_app_error": {"type": "smart_app_error", "smart_app_error": {"code": 500, "description": "backend down"}},
    "transfer_open_chat": {"type": "transfer_to_operator_action", "action": "open_chat", "message_id": "mid-1"},
    "transfer_close_widget": {"type": "transfer_to_operator_action", "action": "close_widget", "message_id": "mid-2"},
    "payment_invoice": {"type": "payment_invoice", "payment_invoice": {"invoice_id": "inv-1"}},
    "request_contacts": {"type": "request_contacts"},
    "request_contact_phone": {"type": "request_contact_phone", "contact_id": 7},
    "request_hashes": {"type": "request_hashes", "hashes": ["a", "b"]},
    "request_hash_of_contacts": {"type": "request_hash_of_contacts"},
    "action_copy": {"type": "action", "action": NEW_ACTIONS["copy_text_to_buffer"]},
}


async def _decode_command(smartapp: Any, text: str) -> smartapp_pb2.Command:
    reply = await smartapp.DecodeCommand(svc.DecodeCommandRequest(json=text), timeout=5)
    command: smartapp_pb2.Command = reply.command
    return command


async def _encode_command(smartapp: Any, command: smartapp_pb2.Command) -> str:
    reply = await smartapp.EncodeCommand(svc.EncodeCommandRequest(command=command), timeout=5)
    text: str = reply.json
    return text


async def _decode_action(smartapp: Any, text: str) -> smartapp_pb2.Action:
    reply = await smartapp.DecodeAction(svc.DecodeActionRequest(json=text), timeout=5)
    action: smartapp_pb2.Action = reply.action
    return action


async def _encode_action(smartapp: Any, action: smartapp_pb2.Action) -> str:
    reply = await smartapp.EncodeAction(svc.EncodeActionRequest(action=action), timeout=5)
    text: str = reply.json
    return text


@pytest.mark.parametrize("name", sorted(NEW_ACTIONS))
async def test_new_actions_round_trip_as_exact_text(smartapp: Any, name: str) -> None:
    text = json.dumps(NEW_ACTIONS[name], ensure_ascii=False)
    assert await _encode_action(smartapp, await _decode_action(smartapp, text)) == text


@pytest.mark.parametrize("name", sorted(NEW_COMMANDS))
async def test_new_commands_round_trip_as_exact_text(smartapp: Any, name: str) -> None:
    text = json.dumps(NEW_COMMANDS[name], ensure_ascii=False)
    assert await _encode_command(smartapp, await _decode_command(smartapp, text)) == text


async def test_new_actions_and_commands_are_typed(smartapp: Any) -> None:
    async def action(name: str) -> smartapp_pb2.Action:
        return await _decode_action(smartapp, json.dumps(NEW_ACTIONS[name]))

    async def command(name: str) -> smartapp_pb2.Command:
        return await _decode_command(smartapp, json.dumps(NEW_COMMANDS[name]))

    phone = (await action("send_contact_phone")).send_contact_phone
    assert (phone.contact_id, phone.template) == (42, "Позвони [[placeholder]]")
    assert (await action("send_contact_phone_bare")).send_contact_phone.HasField("contact_id")
    assert (await action("copy_text_to_buffer")).copy_text_to_buffer.text == "SBER-2026"
    assert (await action("open_keyboard")).WhichOneof("action") == "open_keyboard"
    assert (await action("share_text")).share_text.text == "Смотри, что нашёл"
    search = (await action("start_smart_search")).start_smart_search
    assert (search.query, search.timeout_ms) == ("пицца", 3000)
    other = await action("smartapp_text")
    assert other.other.type == "smartapp_text"
    assert json.loads(other.extra_json) == {"smartapp_text": "привет"}
    assert (await action("server_action_background")).server_action.mode == smartapp_pb2.SERVER_ACTION_MODE_BACKGROUND

    error = (await command("smart_app_error")).smart_app_error
    assert (error.code, error.description) == (500, "backend down")
    transfer = (await command("transfer_close_widget")).transfer_to_operator
    assert (transfer.action, transfer.message_id) == (smartapp_pb2.OPERATOR_CARD_ACTION_CLOSE_WIDGET, "mid-2")
    assert (await command("payment_invoice")).payment_invoice.invoice_id == "inv-1"
    hashes = await command("request_hashes")
    assert hashes.other.type == "request_hashes"
    assert json.loads(hashes.extra_json) == {"hashes": ["a", "b"]}


async def test_commands_built_from_typed_fields(smartapp: Any) -> None:
    cases: list[tuple[smartapp_pb2.Command, dict[str, Any]]] = [
        (
            smartapp_pb2.Command(payment_invoice=smartapp_pb2.PaymentInvoiceCommand(invoice_id="inv-9")),
            {"type": "payment_invoice", "payment_invoice": {"invoice_id": "inv-9"}},
        ),
        (
            smartapp_pb2.Command(
                transfer_to_operator=smartapp_pb2.TransferToOperatorCommand(
                    action=smartapp_pb2.OPERATOR_CARD_ACTION_OPEN_CHAT, message_id="m"
                )
            ),
            {"type": "transfer_to_operator_action", "action": "open_chat", "message_id": "m"},
        ),
        (
            smartapp_pb2.Command(other=smartapp_pb2.OtherCommand(type="request_contacts"), extra_json='{"limit": 5}'),
            {"type": "request_contacts", "limit": 5},
        ),
        (
            smartapp_pb2.Command(
                action=smartapp_pb2.ActionCommand(
                    action=smartapp_pb2.Action(
                        start_smart_search=smartapp_pb2.StartSmartSearchAction(query="кофе"),
                    )
                )
            ),
            {"type": "action", "action": {"type": "start_smart_search", "start_smart_search": {"query": "кофе"}}},
        ),
    ]
    for command, wire in cases:
        assert json.loads(await _encode_command(smartapp, command)) == wire


async def test_real_app_info_through_run_app(smartapp: Any) -> None:
    run_app = {
        "type": "server_action",
        "message_name": "RUN_APP",
        "mode": "foreground",
        "server_action": {"action_id": "run_app", "app_info": REAL_APP_INFO, "parameters": {"from": "push"}},
    }
    text = json.dumps(run_app, ensure_ascii=False)
    decoded = await _decode_action(smartapp, text)
    info = decoded.server_action.run_app.app_info
    assert (info.frontend_type, info.frontend_endpoint, info.affiliation_type) == (
        "WEB_APP",
        "https://shop.example/smartapp/",
        "PARTNERSHIP",
    )
    assert info.frontend_state_id == "0b2bd2d8_7c9b0d4e_e1f2a3b4"
    assert json.loads(info.extra_json) == {k: REAL_APP_INFO[k] for k in ("appearance", "canvasType", "c2bEnabled")}
    assert json.loads(decoded.server_action.run_app.extra_json) == {"parameters": {"from": "push"}}
    assert json.loads(await _encode_action(smartapp, decoded)) == run_app


async def test_real_app_info_through_pay_dialog_finished(smartapp: Any) -> None:
    message = {
        "messageName": "SERVER_ACTION",
        "payload": {
            "app_info": REAL_APP_INFO,
            "server_action": {
                "action_id": "PAY_DIALOG_FINISHED",
                "parameters": {
                    "payment_response": {"response_code": 0, "invoice_id": "inv-1"},
                    "app_info": REAL_APP_INFO,
                },
            },
        },
    }
    reply = await smartapp.DecodePayDialogFinished(svc.DecodePayDialogFinishedRequest(json=json.dumps(message)))
    assert reply.result.response_code == smartapp_pb2.PAYMENT_RESPONSE_CODE_SUCCESS
    assert reply.result.app_info.frontend_type == "WEB_APP"
    assert reply.result.app_info.project_id == REAL_APP_INFO["projectId"]


async def test_smart_app_data_is_exact(smartapp: Any) -> None:
    # Struct stores doubles: 12345678901234567890 would come back as 12345678901234567168, 1.0 as 1.
    text = (
        '{"type": "smart_app_data", "smart_app_data": {"big": 12345678901234567890, "one": 1.0, '
        '"huge": 123456789012345678901234567890, "fine": 0.10000000000000000000001, "list": [1.0, 2.50, 1E+300]}}'
    )
    decoded = await _decode_command(smartapp, text)
    assert await _encode_command(smartapp, decoded) == text
    assert decoded.smart_app_data.smart_app_data["one"] == 1.0  # the Struct view is still there


async def test_smart_app_data_need_not_be_an_object(smartapp: Any) -> None:
    text = '{"type": "smart_app_data", "smart_app_data": [1, "two", null]}'
    decoded = await _decode_command(smartapp, text)
    assert not decoded.smart_app_data.HasField("smart_app_data")
    assert await _encode_command(smartapp, decoded) == text


async def test_run_app_payload_and_invoice_are_exact(smartapp: Any) -> None:
    action_text = (
        '{"type": "server_action", "message_name": "RUN_APP", "server_action": {"app_info": {"systemName": "shop"}, '
        '"payload": {"order": 98765432109876543210, "sum": 100.50}}}'
    )
    assert await _encode_action(smartapp, await _decode_action(smartapp, action_text)) == action_text
    invoice_text = '{"type": "payment_invoice", "payment_invoice": {"invoice_id": "i", "amount": 1.0}}'
    assert await _encode_command(smartapp, await _decode_command(smartapp, invoice_text)) == invoice_text


async def test_unknown_keys_are_kept(smartapp: Any) -> None:
    cases = [
        {"type": "close_app", "reason": "done", "meta": {"n": 1}},
        {"type": "action", "action": {"type": "text", "text": "x", "log_id": "l1"}, "auto_listening": True},
        {"type": "action", "action": {"type": "server_action", "server_action": {}, "mode": "silent"}},
        {"type": "smart_app_error", "smart_app_error": {"code": 1, "description": "d", "retry": True}},
        {"type": "transfer_to_operator_action", "action": "escalate", "message_id": "m"},
        {
            "type": "action",
            "action": {"type": "start_smart_search", "start_smart_search": {"query": "q", "filters": ["a"]}},
        },
    ]
    for original in cases:
        decoded = await _decode_command(smartapp, json.dumps(original, ensure_ascii=False))
        assert json.loads(await _encode_command(smartapp, decoded)) == original


async def _refused(call: Any, request: Any) -> list[str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, timeout=5)
    err = decode(caught.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    return [v.field for v in err.field_violations]


A = smartapp_pb2


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


@pytest.mark.parametrize(
    ("action", "field"),
    [
        (A.Action(text=A.TextAction()), "action.text.text"),
        (A.Action(deep_link=A.DeepLinkAction()), "action.deep_link.deep_link"),
        (
            A.Action(server_action=A.ServerAction(message_name="RUN_APP", run_app=A.RunApp())),
            "action.server_action.run_app.app_info",
        ),
        (
            A.Action(server_action=A.ServerAction(run_app=A.RunApp(app_info=A.AppInfo(application_id="a")))),
            "action.server_action.run_app.app_info",
        ),
        (A.Action(copy_text_to_buffer=A.CopyTextAction()), "action.copy_text_to_buffer.text"),
        (A.Action(share_text=A.ShareTextAction()), "action.share_text.text"),
        (A.Action(send_contact_phone=A.SendContactPhoneAction()), "action.send_contact_phone.contact_id"),
        (A.Action(start_smart_search=A.StartSmartSearchAction()), "action.start_smart_search.query"),
        (A.Action(other=A.OtherAction(type="text")), "action.other.type"),
        (A.Action(other=A.OtherAction()), "action.other.type"),
        (A.Action(open_keyboard=A.OpenKeyboardAction(), extra_json='{"type": "text"}'), "action.extra_json"),
        (A.Action(open_keyboard=A.OpenKeyboardAction(), extra_json="[1]"), "action.extra_json"),
        (
            A.Action(server_action=A.ServerAction(data_json='{"a": 1}', data=_struct({"a": 2}))),
            "action.server_action.data_json",
        ),
        (
            A.Action(
                server_action=A.ServerAction(
                    message_name="RUN_APP",
                    run_app=A.RunApp(app_info=A.AppInfo(system_name="s", extra_json='{"systemName": "t"}')),
                )
            ),
            "action.server_action.run_app.app_info.extra_json",
        ),
    ],
)
async def test_writers_refuse_what_the_wire_requires(smartapp: Any, action: smartapp_pb2.Action, field: str) -> None:
    assert await _refused(smartapp.EncodeAction, svc.EncodeActionRequest(action=action)) == [field]


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (A.Command(action=A.ActionCommand(action=A.Action(text=A.TextAction()))), "command.action.action.text.text"),
        (
            A.Command(transfer_to_operator=A.TransferToOperatorCommand(message_id="m")),
            "command.transfer_to_operator.action",
        ),
        (
            A.Command(transfer_to_operator=A.TransferToOperatorCommand(action=A.OPERATOR_CARD_ACTION_OPEN_CHAT)),
            "command.transfer_to_operator.message_id",
        ),
        (A.Command(other=A.OtherCommand(type="close_app")), "command.other.type"),
        (
            A.Command(
                payment_invoice=A.PaymentInvoiceCommand(invoice_id="a", payment_invoice_json='{"invoice_id": "b"}')
            ),
            "command.payment_invoice.invoice_id",
        ),
        (
            A.Command(smart_app_data=A.SmartAppDataCommand(smart_app_data_json="{")),
            "command.smart_app_data.smart_app_data_json",
        ),
        (A.Command(close_app=A.CloseAppCommand(), extra_json='{"type": "x"}'), "command.extra_json"),
    ],
)
async def test_command_writers_refuse(smartapp: Any, command: smartapp_pb2.Command, field: str) -> None:
    assert await _refused(smartapp.EncodeCommand, svc.EncodeCommandRequest(command=command)) == [field]


async def test_permission_states(smartapp: Any) -> None:
    message: dict[str, Any] = {
        "messageName": "MESSAGE_TO_SKILL",
        "payload": {
            "meta": {
                "permissions": [
                    {"type": "push", "status": "granted"},
                    {"type": "geo", "status": "denied_once"},
                    {"type": "record_audio", "status": "denied_permanently"},
                    {"type": "camera", "status": "asked"},
                ]
            }
        },
    }
    P = smartapp_pb2
    expected = [
        (permission_pb2.PERMISSION_TYPE_PUSH, P.PERMISSION_STATUS_GRANTED),
        (permission_pb2.PERMISSION_TYPE_GEO, P.PERMISSION_STATUS_DENIED_ONCE),
        (permission_pb2.PERMISSION_TYPE_RECORD_AUDIO, P.PERMISSION_STATUS_DENIED_PERMANENTLY),
        (permission_pb2.PERMISSION_TYPE_UNSPECIFIED, P.PERMISSION_STATUS_UNSPECIFIED),
    ]
    for shape in (message, message["payload"], message["payload"]["meta"]):
        reply = await smartapp.DecodePermissionStates(svc.DecodePermissionStatesRequest(json=json.dumps(shape)))
        assert [(p.type, p.status) for p in reply.permissions] == expected
    assert (reply.permissions[3].raw_type, reply.permissions[3].raw_status) == ("camera", "asked")
    empty = await smartapp.DecodePermissionStates(svc.DecodePermissionStatesRequest(json='{"payload": {}}'))
    assert list(empty.permissions) == []
    bad = svc.DecodePermissionStatesRequest(json='{"payload": {"meta": {"permissions": [{"type": 1}]}}}')
    assert await _refused(smartapp.DecodePermissionStates, bad) == ["json.payload.meta.permissions[0].type"]


@pytest.mark.parametrize(
    ("request_kwargs", "fields"),
    [
        ({"message_id": 1, "user": permission_pb2.UserIds(sub="s")}, ["session_id"]),
        ({"session_id": "s", "message_id": 1}, ["user"]),
        ({"session_id": "s", "user": permission_pb2.UserIds(user_channel="B2C")}, ["user"]),
        ({}, ["session_id", "user"]),
    ],
)
async def test_build_permission_request_requires_session_and_user(
    gateway: Gateway, request_kwargs: dict[str, Any], fields: list[str]
) -> None:
    async with grpc.aio.insecure_channel(gateway.address) as ch:
        stub: Any = permission_service_pb2_grpc.PermissionServiceStub(ch)
        request = permission_service_pb2.BuildPermissionRequestRequest(**request_kwargs)
        assert await _refused(stub.BuildPermissionRequest, request) == fields
