"""Delivery statuses: what SmartPush posts to a send's callbackUrl, kept by RqUID in the state store.

Each send made with the receiver on gets an unguessable token (the callback URL's last segment:
SmartPush signs nothing, so the token is the only proof a callback is for this send), stored with
the RqUID and the caller for `ttl_s`. Callbacks are appended as events; the status is computed
from them when asked: duplicates (same body) count once, and the latest status per surface and
device wins by SmartPush's `timestamp` when the callback carries one (else by arrival), so a late
or out-of-order callback never overwrites a newer status.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from google.protobuf import timestamp_pb2
from smartpush.gateway.v1 import delivery_pb2, delivery_service_pb2, errors_pb2

from gateway.clock import Clock
from gateway.config import CallbackSettings
from gateway.errors import GatewayError
from gateway.smartpush.surfaces import WIRE_TO_SURFACE
from gateway.state.store import StateStore
from gateway.telemetry import Telemetry

NS_TOKEN = "callback-token"  # noqa: S105 - a namespace: token -> rq_uid
NS_SEND = "delivery-send"  # rq_uid -> {caller, sent_at}
NS_EVENTS = "delivery-events"  # rq_uid -> [event]
NS_FEED = "delivery-feed"  # caller -> [{rq_uid, at}]
KEEP_EVENTS = 64
KEEP_FEED = 1000


def unknown(rq_uid: str) -> GatewayError:
    return GatewayError(
        errors_pb2.ERROR_REASON_DELIVERY_STATUS_UNKNOWN,
        "no send with this RqUID is known to the delivery-status receiver for this caller",
        metadata={"rq_uid": rq_uid[:64]},
    )


def _stamp(seconds: float) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromNanoseconds(int(seconds * 1e9))
    return out


def _reported_at(body: dict[str, Any], received_at: float) -> float:
    payload = body.get("payload") if isinstance(body.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    raw = payload.get("timestamp", body.get("timestamp"))
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0:
        return raw / 1000 if raw > 1e11 else float(raw)  # epoch ms (or s)
    return received_at


def parse_results(body: Any) -> list[dict[str, Any]]:
    """The per-surface statuses of a callback (tolerant: `payload.result` or `result`, object or list)."""
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    payload = body.get("payload") if isinstance(body.get("payload"), dict) else body
    assert isinstance(payload, dict)
    result = payload.get("result", payload.get("results"))
    items = result if isinstance(result, list) else [result] if isinstance(result, dict) else []
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("surface"), str):
            continue
        status = item.get("status") if isinstance(item.get("status"), dict) else {}
        assert isinstance(status, dict)
        devices = []
        for d in item.get("deviceStatuses") or []:
            if isinstance(d, dict):
                ds = d.get("status") if isinstance(d.get("status"), dict) else {}
                assert isinstance(ds, dict)
                devices.append(
                    {
                        "device_id": str(d.get("deviceId", "")),
                        "product": str(d.get("product", "")),
                        "code": _int(ds.get("code")),
                        "description": str(ds.get("description", ds.get("descr", ""))),
                    }
                )
        out.append(
            {
                "surface": item["surface"],
                "code": _int(status.get("code")),
                "description": str(status.get("description", status.get("descr", ""))),
                "devices": devices,
            }
        )
    if not out:
        raise ValueError("no `result` with a surface")
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31 else 0


@dataclass(frozen=True, slots=True)
class Receipt:
    outcome: str  # accepted | duplicate | unknown_token | malformed
    rq_uid: str = ""


class DeliveryStatuses:
    def __init__(self, settings: CallbackSettings, store: StateStore, clock: Clock, telemetry: Telemetry) -> None:
        self._s = settings
        self.enabled = settings.enabled  # read per send
        self._store = store
        self._clock = clock
        self._t = telemetry

    async def register(self, rq_uid: str, caller: str) -> str:
        """A fresh callback URL for one send (its token stored with the RqUID and the caller)."""
        token = secrets.token_urlsafe(24)
        await self._store.put(NS_TOKEN, token, rq_uid.encode(), ttl_s=self._s.ttl_s)
        meta = json.dumps({"caller": caller, "sent_at": self._clock.time()}).encode()
        await self._store.put(NS_SEND, rq_uid, meta, ttl_s=self._s.ttl_s)
        assert self._s.public_url is not None
        return f"{self._s.public_url.rstrip('/')}/{token}"

    async def receive(self, token: str, raw: bytes) -> Receipt:
        found = await self._store.get(NS_TOKEN, token) if 16 <= len(token) <= 64 else None
        if found is None:
            return Receipt("unknown_token")
        rq_uid = found.decode()
        try:
            body = json.loads(raw)
            results = parse_results(body)
        except ValueError:
            return Receipt("malformed", rq_uid)
        now = self._clock.time()
        digest = hashlib.sha256(raw).hexdigest()[:32]
        events = await self._events(rq_uid)
        duplicate = any(e["digest"] == digest for e in events)
        event = {"digest": digest, "received_at": now, "reported_at": _reported_at(body, now), "results": results}
        await self._store.append(NS_EVENTS, rq_uid, json.dumps(event).encode(), self._s.ttl_s, KEEP_EVENTS)
        if duplicate:
            return Receipt("duplicate", rq_uid)
        meta = await self._meta(rq_uid)
        if meta is not None:
            self._t.delivery_delay.record(max(0.0, now - meta["sent_at"]))
            feed = json.dumps({"rq_uid": rq_uid, "at": now}).encode()
            await self._store.append(NS_FEED, meta["caller"], feed, self._s.ttl_s, KEEP_FEED)
        return Receipt("accepted", rq_uid)

    async def _events(self, rq_uid: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in await self._store.items(NS_EVENTS, rq_uid)]

    async def _meta(self, rq_uid: str) -> dict[str, Any] | None:
        raw = await self._store.get(NS_SEND, rq_uid)
        return None if raw is None else dict(json.loads(raw))

    async def status(self, rq_uid: str, caller: str) -> delivery_service_pb2.DeliveryStatus:
        meta = await self._meta(rq_uid)
        if meta is None or meta["caller"] != caller:
            raise unknown(rq_uid)
        events = await self._events(rq_uid)
        out = delivery_service_pb2.DeliveryStatus(
            rq_uid=rq_uid, callbacks_received=len(events), sent_at=_stamp(meta["sent_at"])
        )
        if events:
            out.updated_at.CopyFrom(_stamp(max(e["received_at"] for e in events)))
        surfaces: dict[str, tuple[float, dict[str, Any]]] = {}
        devices: dict[str, dict[str, tuple[float, dict[str, Any]]]] = {}
        seen: set[str] = set()
        # Arrival order breaks ties; SmartPush's timestamp decides otherwise.
        for event in events:
            if event["digest"] in seen:
                continue
            seen.add(event["digest"])
            at = event["reported_at"]
            for r in event["results"]:
                if r["surface"] not in surfaces or surfaces[r["surface"]][0] <= at:
                    surfaces[r["surface"]] = (at, r)
                for d in r["devices"]:
                    per = devices.setdefault(r["surface"], {})
                    if d["device_id"] not in per or per[d["device_id"]][0] <= at:
                        per[d["device_id"]] = (at, d)
        for name, (at, r) in sorted(surfaces.items()):
            out.surfaces.append(
                delivery_service_pb2.SurfaceDeliveryStatus(
                    surface=WIRE_TO_SURFACE.get(name, delivery_pb2.SURFACE_UNSPECIFIED),  # type: ignore[arg-type]
                    raw_surface=name,
                    status_code=r["code"],
                    description=r["description"],
                    reported_at=_stamp(at),
                    devices=[
                        delivery_service_pb2.DeviceDeliveryStatus(
                            device_id=d["device_id"],
                            product=d["product"],
                            status_code=d["code"],
                            description=d["description"],
                        )
                        for _, d in sorted(devices.get(name, {}).values(), key=lambda x: x[1]["device_id"])
                    ],
                )
            )
        return out

    async def feed(self, caller: str, after: float) -> tuple[list[str], float]:
        """RqUIDs of the caller's sends with a status newer than `after`, and the newest time seen."""
        latest = after
        changed: list[str] = []
        for raw in await self._store.items(NS_FEED, caller):
            item = json.loads(raw)
            if item["at"] > after:
                latest = max(latest, item["at"])
                if item["rq_uid"] not in changed:
                    changed.append(item["rq_uid"])
        return changed, latest
