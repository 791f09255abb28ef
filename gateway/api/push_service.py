"""PushService servicer: proto in -> PushSender -> proto out; errors become rich statuses here."""

from __future__ import annotations

import logging
from dataclasses import replace

import grpc
from smartpush.gateway.v1 import errors_pb2, push_service_pb2, push_service_pb2_grpc

from gateway.api.guard import abort
from gateway.clock import Clock
from gateway.errors import GatewayError
from gateway.push import PushSender
from gateway.smartpush.surfaces import SURFACE_TO_WIRE

log = logging.getLogger("gateway.calls")


class PushServicer(push_service_pb2_grpc.PushServiceServicer):
    def __init__(self, sender: PushSender, clock: Clock) -> None:
        self._sender = sender
        self._clock = clock

    async def Send(
        self, request: push_service_pb2.SendRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> push_service_pb2.SendResponse:
        start = self._clock.monotonic()
        remaining = context.time_remaining()
        deadline = start + remaining if remaining is not None else None
        rq_uid = self._sender.rq_uid(request)
        try:
            response = await self._sender.send(request, deadline, rq_uid)
        except GatewayError as err:
            self._log(request, start, rq_uid, err.code.name, err.reason_name)
            await abort(context, err if err.rq_uid else replace(err, rq_uid=rq_uid))
        except Exception:
            log.exception("unexpected failure in Send", extra={"rq_uid": rq_uid})
            internal = GatewayError(
                grpc.StatusCode.INTERNAL,
                errors_pb2.ERROR_REASON_INTERNAL,
                f"internal gateway error (rq_uid {rq_uid})",
                rq_uid=rq_uid,
            )
            await abort(context, internal)
        self._log(request, start, rq_uid, "OK", None, response)
        return response

    def _log(
        self,
        req: push_service_pb2.SendRequest,
        start: float,
        rq_uid: str,
        code: str,
        reason: str | None,
        response: push_service_pb2.SendResponse | None = None,
    ) -> None:
        extra: dict[str, object] = {
            "rpc": "PushService/Send",
            "grpc_code": code,
            "rq_uid": rq_uid,
            "duration_ms": round((self._clock.monotonic() - start) * 1000, 2),
            "profile": "inline" if req.HasField("credentials") else (req.profile or "default"),
            "template_id": req.delivery.template_content.id,
            "surfaces": [SURFACE_TO_WIRE.get(d.surface, str(d.surface)) for d in req.delivery.destinations],
            "validate_only": req.validate_only,
        }
        if reason:
            extra["reason"] = reason
        if response is not None:
            extra["status_codes"] = [r.status_code for r in response.results]
            extra["replayed"] = response.replayed
        log.info("Send %s", code, extra=extra)
