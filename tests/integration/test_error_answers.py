"""Error answers as a caller sees them: one table, INTERNAL without exception text, bounded size."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from smartpush.gateway.v1 import delivery_pb2, errors_pb2
from smartpush_gateway_client.errors import decode

from gateway.consent import ConsentRecord
from gateway.emulator import EmulatorServer
from gateway.errors import REASONS, GatewayError, to_grpc_status
from gateway.logs import JsonFormatter, TraceContextFilter
from gateway.server import start_gateway
from gateway.telemetry import Telemetry
from tests.conftest import settings_for
from tests.helpers import AsyncStub, async_stub, send_request


def test_every_reason_has_exactly_one_code() -> None:
    # The table covers every value of the proto enum (except UNSPECIFIED, never sent) and nothing else.
    named = {v.number for v in errors_pb2.ErrorReason.DESCRIPTOR.values} - {errors_pb2.ERROR_REASON_UNSPECIFIED}
    assert set(REASONS) == named
    assert grpc.StatusCode.UNKNOWN not in {spec.code for spec in REASONS.values()}


def test_a_huge_error_is_cut_to_fit_with_a_count_of_what_was_left_out() -> None:
    from gateway.errors import FieldViolation

    violations = [FieldViolation(f"delivery.destinations[{i}].surface" + "x" * 300, "я" * 500) for i in range(400)]
    err = GatewayError(errors_pb2.ERROR_REASON_INVALID_REQUEST, "ы" * 20_000, field_violations=violations)
    status = to_grpc_status(err)
    size = sum(len(k) + len(v) for k, v in status.trailing_metadata)
    assert size < 4096
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    details = status_pb2.Status.FromString(raw)
    bad = error_details_pb2.BadRequest()
    next(d for d in details.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    shown = len(bad.field_violations) - 1
    assert 0 < shown < 400
    assert bad.field_violations[-1].description == f"and {400 - shown} more violation(s) not shown"
    assert len(status.details) <= 300  # the message, cut


async def test_many_violations_reach_a_default_client_with_details(stub: AsyncStub) -> None:
    req = send_request()
    del req.delivery.destinations[:]
    req.delivery.destinations.extend(delivery_pb2.Destination(surface=0) for _ in range(500))  # type: ignore[arg-type]
    req.sub = "s" * 5000
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(req, timeout=5)
    err = decode(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ERROR_REASON_INVALID_REQUEST")
    assert err.field_violations[0].field == "sub"
    assert err.field_violations[-1].description.endswith("more violation(s) not shown")


class _BrokenStore:
    """A store that fails in a way nobody planned for."""

    async def get(self, project_id: str, sub: str) -> ConsentRecord | None:
        raise ValueError("disk on fire at /var/lib/secret-path")

    async def put(self, record: ConsentRecord) -> None:
        raise ValueError("disk on fire")

    async def close(self) -> None:
        return None


async def test_an_unexpected_failure_is_internal_with_rq_uid_and_logged_with_its_stack(
    emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(TraceContextFilter())
    settings = settings_for(emulator, require_consent=True, state={"sqlite_path": tmp_path / "c.sqlite3"})
    gw = await start_gateway(settings, consent=_BrokenStore(), telemetry=Telemetry.disabled())
    try:
        async with grpc.aio.insecure_channel(gw.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await async_stub(channel).Send(send_request(idempotency_key="k-1"), timeout=5)
    finally:
        await gw.stop(0)
    err = decode(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.INTERNAL, "ERROR_REASON_INTERNAL")
    assert err.rq_uid
    assert err.rq_uid in err.message
    assert "disk on fire" not in err.message
    assert "ValueError" not in err.message
    record = next(r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info)
    line = json.loads(JsonFormatter().format(record))
    assert line["exc_type"] == "ValueError"
    assert line["exc_message"] == "disk on fire at /var/lib/secret-path"
    assert "Traceback" in line["exc_stack"]
    assert "in get" in line["exc_stack"]
    assert line["rq_uid"] == err.rq_uid
