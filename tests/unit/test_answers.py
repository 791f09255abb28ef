"""Edge cases of answer classification that the emulator does not produce on its own."""

from __future__ import annotations

import json

import grpc
import pytest
from smartpush.gateway.v1 import delivery_pb2 as d

from gateway.errors import GatewayError
from gateway.smartpush.answers import classify

RQ = "6f1d5a0e-5b7e-4c35-9d1e-1d2b3c4d5e6f"


def _body(**payload: object) -> bytes:
    return json.dumps({"responseId": "r-1", "payload": payload}).encode()


def test_validation_descr_and_result_description_are_both_read() -> None:
    body = _body(
        validation={"results": [{"surface": "SBERBOX", "status": {"code": 0, "descr": "ok"}}]},
        result={
            "surface": "SBERBOX",
            "status": {"code": 0, "description": "delivered"},
            "deviceStatuses": [{"deviceId": "d1", "product": "sberbox", "status": {"code": 0, "description": "ok"}}],
        },
    )
    outcome = classify(200, body, [d.SURFACE_SBERBOX], sequential=False)
    dest = outcome.destinations[0]
    assert (dest.status_code, dest.description, dest.reported) == (0, "delivered", True)
    assert [(x.device_id, x.product) for x in dest.devices] == [("d1", "sberbox")]
    assert outcome.response_id == "r-1"


def test_result_as_a_list_and_unreported_destinations() -> None:
    body = _body(result=[{"surface": "COMPANION", "status": {"code": 0, "description": "ok"}}])
    outcome = classify(200, body, [d.SURFACE_COMPANION, d.SURFACE_TV], sequential=True)
    assert [(x.reported, x.status_code) for x in outcome.destinations] == [(True, 0), (False, 0)]


def test_result_without_surface_belongs_to_the_single_destination() -> None:
    body = _body(result={"status": {"code": 1013, "description": "disabled"}})
    with pytest.raises(GatewayError) as caught:
        classify(200, body, [d.SURFACE_COMPANION], sequential=False)
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.status_code == 1013


def test_not_json_is_an_internal_bad_response_never_unknown() -> None:
    with pytest.raises(GatewayError) as caught:
        classify(200, b"<html>", [d.SURFACE_COMPANION], sequential=False)
    assert caught.value.code == grpc.StatusCode.INTERNAL
    assert caught.value.reason_name == "ERROR_REASON_UPSTREAM_BAD_RESPONSE"


def test_http_400_without_codes_keeps_upstream_errors_as_violations() -> None:
    body = json.dumps({"errors": [{"key": "payload.sender", "message": "required"}]}).encode()
    with pytest.raises(GatewayError) as caught:
        classify(400, body, [d.SURFACE_COMPANION], sequential=False)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.description) for v in caught.value.field_violations] == [
        ("upstream:payload.sender", "required")
    ]


def test_http_404_is_internal() -> None:
    with pytest.raises(GatewayError) as caught:
        classify(404, b"", [d.SURFACE_COMPANION], sequential=False)
    assert caught.value.code == grpc.StatusCode.INTERNAL


def test_items_that_are_not_objects_say_nothing_instead_of_failing() -> None:
    """A result, validation item or device status that is not a JSON object is skipped: the answer
    is read for what it does say (an AttributeError here was an INTERNAL to the caller)."""
    body = _body(
        validation={"results": ["ok", 7]},
        result=[
            None,
            {"surface": "SBERBOX", "status": {"code": 0, "description": "delivered"}, "deviceStatuses": ["d1", 3]},
        ],
    )
    outcome = classify(200, body, [d.SURFACE_SBERBOX], sequential=False)
    [dest] = outcome.destinations
    assert (dest.reported, dest.status_code, dest.description, dest.devices) == (True, 0, "delivered", [])


def test_status_codes_as_text_are_read_and_anything_else_is_unknown() -> None:
    body = _body(
        result=[
            {"surface": "SBERBOX", "status": {"code": "1013", "description": "throttled"}},
            {"surface": "COMPANION", "status": {"code": True}},
        ]
    )
    with pytest.raises(GatewayError) as err:
        classify(200, body, [d.SURFACE_SBERBOX, d.SURFACE_COMPANION], sequential=False)
    assert err.value.status_code == 1013
    body = _body(result={"surface": "COMPANION", "status": {"code": 1.5, "description": 42}})
    with pytest.raises(GatewayError) as err:
        classify(200, body, [d.SURFACE_COMPANION], sequential=False)
    assert err.value.status_code == -1
    assert "42" in str(err.value)
