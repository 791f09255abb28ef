"""A `google.rpc.Status` (an error answer, or a batch item's) as a plain dict, for the CLI's output.

The CLI reads the gateway's answers itself rather than through the client SDK, so the gateway
installs and runs without it.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"
CODE_NAMES: dict[int, str] = {int(v): k for k, v in code_pb2.Code.items()}


def describe(status: status_pb2.Status) -> dict[str, Any]:
    out: dict[str, Any] = {"code": CODE_NAMES.get(status.code, str(status.code)), "message": status.message}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            out.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out["field_violations"] = [{"field": v.field, "description": v.description} for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            out["retry_after_s"] = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            quota = error_details_pb2.QuotaFailure()
            detail.Unpack(quota)
            out["quota_violations"] = [{"subject": v.subject, "description": v.description} for v in quota.violations]
    return out


def describe_error(error: grpc.RpcError) -> dict[str, Any]:
    call: grpc.Call = error  # type: ignore[assignment]
    for key, value in call.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            return describe(status_pb2.Status.FromString(value))
    return {"code": call.code().name, "message": call.details() or ""}
