"""Classify a SmartPush answer into per-destination results or one GatewayError (design §5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from smartpush.gateway.v1 import errors_pb2

from gateway.errors import FieldViolation, GatewayError, QuotaViolation
from gateway.smartpush import status_codes
from gateway.smartpush.surfaces import SURFACE_TO_WIRE


@dataclass(slots=True)
class DeviceResult:
    device_id: str
    product: str
    status_code: int
    description: str


@dataclass(slots=True)
class DestinationOutcome:
    surface: int
    status_code: int = 0
    description: str = ""
    devices: list[DeviceResult] = field(default_factory=list)
    reported: bool = False


@dataclass(slots=True)
class Outcome:
    response_id: str
    destinations: list[DestinationOutcome]


def _status(obj: Any) -> tuple[int, str]:
    status = obj.get("status") if isinstance(obj, dict) else None
    if not isinstance(status, dict):
        return 0, ""
    code = status.get("code", 0)
    # Validation results say `descr`, results and device statuses say `description` (reference §5.1).
    text = status["description"] if "description" in status else status.get("descr", "")
    if type(code) is not int:  # the usual case first: JSON integers come as exact ints
        code = int(code) if isinstance(code, str) and code.lstrip("-").isdigit() else -1
    return code, text if type(text) is str else str(text)


def _as_list(value: Any) -> list[Any]:
    if type(value) is list:
        return value
    return [value] if isinstance(value, dict) else []


def _target(
    item: Any, by_name: dict[str, DestinationOutcome], single: DestinationOutcome | None
) -> DestinationOutcome | None:
    """The destination a result or validation item is about: by its surface, or the only one.
    An item that is not an object is about none."""
    if not isinstance(item, dict):
        return None
    name = item.get("surface")
    return by_name.get(name) if isinstance(name, str) else single


def _bad_response(message: str, http_status: int) -> GatewayError:
    return GatewayError(
        errors_pb2.ERROR_REASON_UPSTREAM_BAD_RESPONSE, message, metadata={"http_status": str(http_status)}
    )


def _upstream_violations(envelope: dict[str, Any]) -> list[FieldViolation]:
    out = []
    for item in _as_list(envelope.get("errors")):
        key, message = item.get("key"), item.get("message")
        if key or message:
            out.append(FieldViolation(f"upstream:{key or ''}", str(message or "")[:300]))
    return out


def classify(
    http_status: int,
    body: bytes,
    surfaces: Sequence[int],
    *,
    sequential: bool,
    retry_after_s: float | None = None,
    template_error_codes: str = "salutejs",
) -> Outcome:
    """Results in request order, or the error for an answer in which nothing was delivered.

    `retry_after_s` (the answer's Retry-After) goes into an error's RetryInfo, e.g. for 1014.
    """
    try:
        envelope = orjson.loads(body) if body else {}
    except ValueError:  # orjson.JSONDecodeError is a ValueError
        raise _bad_response(
            f"SmartPush answered HTTP {http_status} with a body that is not JSON", http_status
        ) from None
    if not isinstance(envelope, dict):
        raise _bad_response(f"SmartPush answered HTTP {http_status} with unexpected JSON", http_status)
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        payload = {}
    by_surface = {s: DestinationOutcome(surface=s) for s in surfaces}
    by_name = {SURFACE_TO_WIRE[s]: by_surface[s] for s in surfaces}
    single = by_surface[surfaces[0]] if len(surfaces) == 1 else None

    validation = payload.get("validation")
    if isinstance(validation, dict):
        for item in _as_list(validation.get("results")):
            dest = _target(item, by_name, single)
            if dest is not None:
                dest.status_code, dest.description = _status(item)
                dest.reported = True
    for item in _as_list(payload.get("result")):
        dest = _target(item, by_name, single)
        if dest is None:
            continue
        code, text = _status(item)
        if "status" in item and (not dest.reported or dest.status_code == 0):
            dest.status_code, dest.description = code, text or dest.description
        dest.reported = True
        for dev in _as_list(item.get("deviceStatuses")):
            if isinstance(dev, dict):  # anything else in the list says nothing of a device
                dcode, dtext = _status(dev)
                dest.devices.append(
                    DeviceResult(str(dev.get("deviceId", "")), str(dev.get("product", "")), dcode, dtext)
                )
    outcome = Outcome(str(envelope.get("responseId", "")), [by_surface[s] for s in surfaces])
    reported = [d for d in outcome.destinations if d.reported]

    if 200 <= http_status < 300:
        failed_any = delivered_any = False
        for d in reported:
            if d.status_code:
                failed_any = True
            else:
                delivered_any = True
        # Nothing failed; or BROADCAST partial success, or SEQUENTIAL delivered after earlier
        # destinations failed.
        if delivered_any or not failed_any:
            return outcome
    failed = next((d for d in reported if d.status_code != 0), None)
    violations = _upstream_violations(envelope)
    if failed is not None:
        raise _status_error(failed, violations, http_status, retry_after_s, template_error_codes)
    if http_status == 400:
        raise GatewayError(
            errors_pb2.ERROR_REASON_SCHEMA_VIOLATION,
            "SmartPush rejected the request as malformed (HTTP 400)",
            field_violations=violations,
            metadata={"http_status": "400"},
        )
    raise _bad_response(f"SmartPush answered HTTP {http_status} without a status code", http_status)


def _status_error(
    failed: DestinationOutcome,
    violations: list[FieldViolation],
    http_status: int,
    retry_after_s: float | None,
    template_error_codes: str,
) -> GatewayError:
    mapping = status_codes.lookup(failed.status_code, template_error_codes)
    surface = SURFACE_TO_WIRE[failed.surface]
    text = f": {failed.description[:200]}" if failed.description else ""
    quota = []
    if failed.status_code in status_codes.QUOTA_SUBJECTS:
        quota.append(QuotaViolation(status_codes.QUOTA_SUBJECTS[failed.status_code], mapping.meaning))
    return GatewayError(
        mapping.reason,
        f"SmartPush status {failed.status_code} ({mapping.meaning}) for {surface}{text}",
        status_code=failed.status_code,
        field_violations=violations,
        quota_violations=quota,
        retry_after_s=retry_after_s,
        metadata={"surface": surface, "http_status": str(http_status)},
    )
