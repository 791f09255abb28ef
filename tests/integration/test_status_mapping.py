"""Every SmartPush status code and token error maps to a precise gRPC status (design §5)."""

from __future__ import annotations

import grpc
import pytest
from pydantic import SecretStr
from smartpush.gateway.v1 import delivery_pb2 as d
from smartpush.gateway.v1 import push_service_pb2
from smartpush_gateway_client.errors import GatewayCallError, decode

from gateway.config import ProfileSettings
from gateway.emulator import DEMO_CLIENT_ID
from tests.conftest import GatewayFactory
from tests.helpers import PROJECT, AsyncStub, EmulatorAdmin, async_stub, send_request

C = grpc.StatusCode
STATUS_TABLE = [
    (1000, C.INVALID_ARGUMENT, "ERROR_REASON_SCHEMA_VIOLATION"),
    (1001, C.INVALID_ARGUMENT, "ERROR_REASON_REQUEST_INTEGRITY"),
    (1002, C.INVALID_ARGUMENT, "ERROR_REASON_CLIENT_ID_TYPE_NOT_ALLOWED"),
    (1003, C.INVALID_ARGUMENT, "ERROR_REASON_DELIVERY_PARAMETERS_INVALID"),
    (1004, C.INVALID_ARGUMENT, "ERROR_REASON_CHANNEL_OR_SURFACE_UNKNOWN"),
    (1005, C.INVALID_ARGUMENT, "ERROR_REASON_SURFACE_NOT_DEFINED"),
    (1006, C.INVALID_ARGUMENT, "ERROR_REASON_CONFLICTING_PARAMETERS"),
    (1007, C.INVALID_ARGUMENT, "ERROR_REASON_ORIGIN_SURFACE_UNKNOWN"),
    (1008, C.INVALID_ARGUMENT, "ERROR_REASON_INVALID_TIME"),
    (1009, C.INVALID_ARGUMENT, "ERROR_REASON_PARAMETERS_SURFACE_MISMATCH"),
    (1012, C.INVALID_ARGUMENT, "ERROR_REASON_SUB_FORMAT_INVALID"),
    (1013, C.FAILED_PRECONDITION, "ERROR_REASON_PUSH_NOT_ENABLED"),
    (1014, C.RESOURCE_EXHAUSTED, "ERROR_REASON_QUOTA_EXCEEDED"),
    (1015, C.INVALID_ARGUMENT, "ERROR_REASON_FILTERS_CONFLICT"),
    (1016, C.FAILED_PRECONDITION, "ERROR_REASON_TEMPLATE_NOT_FOUND"),
    (1017, C.INVALID_ARGUMENT, "ERROR_REASON_TEMPLATE_VARIABLES_MISMATCH"),
    (1018, C.RESOURCE_EXHAUSTED, "ERROR_REASON_USER_QUOTA_EXCEEDED"),
    (1010, C.INTERNAL, "ERROR_REASON_UPSTREAM_STATUS_UNKNOWN"),  # undocumented code: never a bare UNKNOWN
]
TOKEN_TABLE = [
    (1, "ERROR_REASON_TOKEN_SCOPE_INVALID"),
    (4, "ERROR_REASON_TOKEN_CREDENTIALS_MALFORMED"),
    (5, "ERROR_REASON_TOKEN_SCOPE_EMPTY"),
    (6, "ERROR_REASON_TOKEN_CREDENTIALS_REJECTED"),
    (7, "ERROR_REASON_TOKEN_SCOPE_NOT_GRANTED"),
]


async def _fail(stub: AsyncStub, **kw: object) -> GatewayCallError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(send_request(d.SURFACE_COMPANION, **kw), timeout=5)  # type: ignore[arg-type]
    return decode(caught.value)


@pytest.mark.parametrize(("status_code", "code", "reason"), STATUS_TABLE)
async def test_status_code_mapping(
    stub: AsyncStub,
    admin: EmulatorAdmin,
    status_code: int,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    await admin.next_fault(status_code=status_code)
    err = await _fail(stub)
    assert (err.code, err.reason, err.domain) == (code, reason, "smartpush.gateway")
    assert err.status_code == status_code
    assert err.rq_uid == (await admin.sends())[0]["rq_uid"]
    if status_code in (1014, 1018):
        assert [s for s, _ in err.quota_violations] == ["project" if status_code == 1014 else "user"]
    assert len(await admin.sends()) == 1  # business errors are not retried


@pytest.mark.parametrize(("token_code", "reason"), TOKEN_TABLE)
async def test_token_error_mapping(stub: AsyncStub, admin: EmulatorAdmin, token_code: int, reason: str) -> None:
    await admin.next_fault(endpoint="token", token_error_code=token_code)
    err = await _fail(stub)
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, reason)
    assert err.metadata["token_error_code"] == str(token_code)
    assert await admin.sends() == []


async def test_real_wrong_secret_is_rejected_by_the_token_endpoint(
    make_gateway: GatewayFactory, admin: EmulatorAdmin
) -> None:
    gw = await make_gateway(
        profiles={"default": ProfileSettings(client_id=DEMO_CLIENT_ID, secret=SecretStr("not-the-secret"))}
    )
    async with grpc.aio.insecure_channel(gw.address) as ch:
        err = await _fail(async_stub(ch))
    assert err.reason == "ERROR_REASON_TOKEN_CREDENTIALS_REJECTED"
    assert "not-the-secret" not in err.message


async def test_real_triggers(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    await admin.config(disabled_projects=[PROJECT])
    assert (await _fail(stub)).status_code == 1013
    await admin.config(disabled_projects=[])
    assert (await _fail(stub, template_id="0c7c2a4e-0000-4000-8000-000000000000")).status_code == 1016
    await admin.config(templates={"t-vars": {"header_variables": ["name"], "body_variables": []}})
    assert (await _fail(stub, template_id="t-vars")).status_code == 1017


async def test_quotas(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    await admin.config(per_user_limit_per_minute=2)
    for _ in range(2):
        await stub.Send(send_request(d.SURFACE_COMPANION), timeout=5)
    err = await _fail(stub)
    assert (err.code, err.status_code) == (grpc.StatusCode.RESOURCE_EXHAUSTED, 1018)
    await admin.config(per_user_limit_per_minute=0, overall_limit_per_minute=1)
    await stub.Send(send_request(d.SURFACE_COMPANION, sub="someone-else"), timeout=5)
    assert (await _fail(stub, sub="a-third-user")).status_code == 1014


async def test_broadcast_partial_success_is_ok_with_per_destination_codes(
    stub: AsyncStub, admin: EmulatorAdmin
) -> None:
    await admin.config(surface_status={"SBERBOX": 1004})
    response = await stub.Send(send_request(d.SURFACE_COMPANION, d.SURFACE_SBERBOX, d.SURFACE_TV), timeout=5)
    assert [(r.surface, r.status_code) for r in response.results] == [
        (d.SURFACE_COMPANION, 0),
        (d.SURFACE_SBERBOX, 1004),
        (d.SURFACE_TV, 0),
    ]
    assert response.results[1].description == "channel or surface unknown"
    assert all(r.reported for r in response.results)


async def test_sequential_falls_through_to_the_next_priority(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    await admin.config(surface_status={"COMPANION": 1004})
    response = await stub.Send(
        send_request(d.SURFACE_COMPANION, d.SURFACE_SBERBOX, mode=d.DELIVERY_MODE_SEQUENTIAL), timeout=5
    )
    assert [(r.status_code, r.reported) for r in response.results] == [(1004, True), (0, True)]


async def test_all_destinations_failing_is_an_error(stub: AsyncStub, admin: EmulatorAdmin) -> None:
    await admin.config(surface_status={"COMPANION": 1004, "SBERBOX": 1004})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(send_request(d.SURFACE_COMPANION, d.SURFACE_SBERBOX), timeout=5)
    err = decode(caught.value)
    assert (err.code, err.status_code, err.metadata["surface"]) == (grpc.StatusCode.INVALID_ARGUMENT, 1004, "COMPANION")


async def test_unknown_profile_and_disabled_inline_credentials(stub: AsyncStub) -> None:
    err = await _fail(stub, profile="nope")
    assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "ERROR_REASON_PROFILE_NOT_FOUND")
    err = await _fail(stub, credentials=push_service_pb2.Credentials(client_id="x", secret="y"))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ERROR_REASON_INLINE_CREDENTIALS_DISABLED")


async def test_the_meaning_of_1016_is_a_switch(make_gateway: GatewayFactory, admin: EmulatorAdmin) -> None:
    # S4 says 1016 is a variable mismatch; salutejs says it is a missing template (mismatch: 1017).
    await admin.config(
        templates={"t-vars": {"header_variables": ["name"], "body_variables": []}}, template_mismatch_code=1016
    )
    default = await make_gateway()
    s4 = await make_gateway(smartpush={"wire": {"template_error_codes": "s4"}})
    for gw, reason in (
        (default, "ERROR_REASON_TEMPLATE_NOT_FOUND"),
        (s4, "ERROR_REASON_TEMPLATE_VARIABLES_MISMATCH"),
    ):
        async with grpc.aio.insecure_channel(gw.address) as ch:
            err = await _fail(async_stub(ch), template_id="t-vars")
        assert (err.status_code, err.reason) == (1016, reason)
