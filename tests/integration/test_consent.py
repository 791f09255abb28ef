"""Runtime consent: parsing TAKE_RUNTIME_PERMISSIONS, recording it, and refusing sends without it."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from smartpush.gateway.v1 import delivery_pb2 as d
from smartpush.gateway.v1 import permission_pb2, permission_service_pb2, permission_service_pb2_grpc
from smartpush_gateway_client.errors import decode

from tests import seed_examples as seeds
from tests.conftest import GatewayFactory
from tests.helpers import PROJECT, SUB, EmulatorAdmin, async_stub, send_request

pb = permission_service_pb2
S = permission_pb2


def _with_code(code: int) -> str:
    message = json.loads(json.dumps(seeds.TAKE_RUNTIME_PERMISSIONS))
    message["payload"]["status_code"] = {"code": code, "description": "x"}
    message["payload"]["permitted_actions"] = [] if code != 1 else ["service_push"]
    return json.dumps(message)


def _permissions(channel: grpc.aio.Channel) -> Any:
    return permission_service_pb2_grpc.PermissionServiceStub(channel)


async def test_parse_the_seed_example_and_other_codes(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    async with grpc.aio.insecure_channel(gw.address) as ch:
        stub = _permissions(ch)
        seed = await stub.ParseRuntimePermissions(
            pb.ParseRuntimePermissionsRequest(message_json=json.dumps(seeds.TAKE_RUNTIME_PERMISSIONS)), timeout=5
        )
        r = seed.result
        assert (r.status, r.status_code, r.push_allowed) == (S.RUNTIME_PERMISSION_STATUS_GRANTED, 1, True)
        assert list(r.permitted_actions) == ["service_push"]
        assert (r.user.user_id, r.user.user_channel, r.session_id) == (
            "ec8a9097-1508-4bec-8d97-67f2329c03e0",
            "B2C",
            "0062530b-5521-42cc-90b0-a9d65dea4e98",
        )
        assert r.message_id == "1605196199186625000"
        for code, status in (
            (101, S.RUNTIME_PERMISSION_STATUS_DENIED_BY_USER),
            (102, S.RUNTIME_PERMISSION_STATUS_SMARTAPP_NOT_ALLOWED),
        ):
            reply = await stub.ParseRuntimePermissions(pb.ParseRuntimePermissionsRequest(message_json=_with_code(code)))
            assert (reply.result.status, reply.result.push_allowed) == (status, False)
        for garbage, field in (
            ("{{{", "message_json"),
            ("[1, 2]", "message_json"),
            ('{"messageName": "TAKE_RUNTIME_PERMISSIONS"}', "message_json.payload"),
            (
                '{"messageName": "TAKE_RUNTIME_PERMISSIONS", "payload": {"status_code": {"code": "1"}}}',
                "message_json.payload.status_code.code",
            ),
            ('{"messageName": "MESSAGE_TO_SKILL", "payload": {}}', "message_json.messageName"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ParseRuntimePermissions(pb.ParseRuntimePermissionsRequest(message_json=garbage), timeout=5)
            err = decode(caught.value)
            assert err.code == grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in err.field_violations] == [field]


async def test_require_consent_flow_and_restart(make_gateway: GatewayFactory, admin: EmulatorAdmin) -> None:
    gw = await make_gateway(require_consent=True)
    async with grpc.aio.insecure_channel(gw.address) as ch:
        push, perms = async_stub(ch), _permissions(ch)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await push.Send(send_request(d.SURFACE_COMPANION), timeout=5)
        err = decode(caught.value)
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ERROR_REASON_CONSENT_MISSING")
        assert await admin.stats() == {}  # refused before any upstream call

        # The seed's example carries only userId: the backend passes the sub it knows.
        recorded = await perms.RecordConsent(
            pb.RecordConsentRequest(
                project_id=PROJECT, sub=SUB, message_json=json.dumps(seeds.TAKE_RUNTIME_PERMISSIONS)
            ),
            timeout=5,
        )
        assert recorded.recorded
        assert (recorded.consent.status, recorded.consent.push_allowed) == (S.RUNTIME_PERMISSION_STATUS_GRANTED, True)
        assert recorded.consent.source_message == "TAKE_RUNTIME_PERMISSIONS"
        response = await push.Send(send_request(d.SURFACE_COMPANION), timeout=5)
        assert response.results[0].status_code == 0

        await perms.RecordConsent(pb.RecordConsentRequest(project_id=PROJECT, sub=SUB, message_json=_with_code(101)))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await push.Send(send_request(d.SURFACE_COMPANION), timeout=5)
        assert decode(caught.value).reason == "ERROR_REASON_CONSENT_DENIED"

        await perms.RecordConsent(
            pb.RecordConsentRequest(project_id=PROJECT, sub="other", message_json=_with_code(102))
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await push.Send(send_request(d.SURFACE_COMPANION, sub="other"), timeout=5)
        assert decode(caught.value).reason == "ERROR_REASON_SMARTAPP_NOT_ALLOWED"

        # Consent shows up in ordinary traffic too (reference §9), with the sub and project in the message.
        ordinary = {
            "messageName": "MESSAGE_TO_SKILL",
            "uuid": {"sub": "third-user", "userId": "u3", "userChannel": "COMPANION_B2C"},
            "payload": {"permitted_actions": ["service_push"], "app_info": {"projectId": PROJECT}},
        }
        assert (await perms.RecordConsent(pb.RecordConsentRequest(message_json=json.dumps(ordinary)))).recorded
        silent = {"messageName": "MESSAGE_TO_SKILL", "uuid": {"sub": "fourth"}, "payload": {}}
        assert not (await perms.RecordConsent(pb.RecordConsentRequest(message_json=json.dumps(silent)))).recorded
    await gw.stop(0)

    restarted = await make_gateway(require_consent=True)  # same state file
    async with grpc.aio.insecure_channel(restarted.address) as ch:
        push, perms = async_stub(ch), _permissions(ch)
        found = await perms.GetConsent(pb.GetConsentRequest(project_id=PROJECT, sub="third-user"), timeout=5)
        assert found.found
        assert found.consent.source_message == "MESSAGE_TO_SKILL"
        assert (await push.Send(send_request(d.SURFACE_COMPANION, sub="third-user"), timeout=5)).results[
            0
        ].status_code == 0
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await push.Send(send_request(d.SURFACE_COMPANION), timeout=5)
        assert decode(caught.value).reason == "ERROR_REASON_CONSENT_DENIED"  # the 101 survived the restart too
        missing = await perms.GetConsent(pb.GetConsentRequest(project_id=PROJECT, sub="nobody"), timeout=5)
        assert not missing.found


async def test_record_without_a_sub_names_the_field(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    async with grpc.aio.insecure_channel(gw.address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _permissions(ch).RecordConsent(
                pb.RecordConsentRequest(project_id=PROJECT, message_json=json.dumps(seeds.TAKE_RUNTIME_PERMISSIONS))
            )
    assert [v.field for v in decode(caught.value).field_violations] == ["sub"]


async def test_the_store_keeps_no_sub_in_clear(make_gateway: GatewayFactory, tmp_path: Any) -> None:
    gw = await make_gateway()
    async with grpc.aio.insecure_channel(gw.address) as ch:
        await _permissions(ch).RecordConsent(
            pb.RecordConsentRequest(
                project_id=PROJECT, sub=SUB, message_json=json.dumps(seeds.TAKE_RUNTIME_PERMISSIONS)
            )
        )
    await gw.stop(0)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.sqlite3*"))
    assert PROJECT.encode() in raw
    assert SUB.encode() not in raw
