"""PermissionService: build and read consent messages, record and query consent."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import timestamp_pb2
from smartpush.gateway.v1 import permission_pb2, permission_service_pb2, permission_service_pb2_grpc

from gateway.api.edge import current_caller
from gateway.clock import Clock
from gateway.consent import ConsentRecord, ConsentStore
from gateway.errors import FieldViolation, invalid_argument
from gateway.smartapp import permissions
from gateway.smartapp.json_input import dump_json

pb = permission_service_pb2
Context = grpc.aio.ServicerContext[Any, Any]


def consent_proto(record: ConsentRecord) -> permission_pb2.Consent:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(record.recorded_at * 1e9))
    return permission_pb2.Consent(
        project_id=record.project_id,
        sub=record.sub,
        status=record.status,  # type: ignore[arg-type]
        push_allowed=record.push_allowed,
        recorded_at=stamp,
        source_message=record.source,
    )


class PermissionServicer(permission_service_pb2_grpc.PermissionServiceServicer):
    def __init__(self, store: ConsentStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def BuildPermissionRequest(
        self, request: pb.BuildPermissionRequestRequest, context: Context
    ) -> pb.BuildPermissionRequestResponse:
        missing = []
        if not request.session_id:
            missing.append(FieldViolation("session_id", "required: the dialog session the request answers"))
        if not (request.user.user_id or request.user.sub):
            missing.append(FieldViolation("user", "required: user_id or sub of the user to ask"))
        if missing:
            raise invalid_argument(missing)
        message = permissions.get_runtime_permissions(request.session_id, request.message_id, request.user)
        command_json = permissions.request_permissions_json(request.permissions)
        return pb.BuildPermissionRequestResponse(
            get_runtime_permissions_json=dump_json(message),
            request_permissions_command_json=command_json,
            request_permissions_command=permissions.request_permissions_command(
                request.permissions
            ).request_permissions,
        )

    async def ParseRuntimePermissions(
        self, request: pb.ParseRuntimePermissionsRequest, context: Context
    ) -> pb.ParseRuntimePermissionsResponse:
        data = permissions.load_message(request.message_json)
        return pb.ParseRuntimePermissionsResponse(result=permissions.parse_take_runtime_permissions(data))

    async def RecordConsent(self, request: pb.RecordConsentRequest, context: Context) -> pb.RecordConsentResponse:
        signal = permissions.consent_signal(permissions.load_message(request.message_json))
        if signal is None:
            return pb.RecordConsentResponse(recorded=False)
        sub = request.sub or signal.sub
        project = request.project_id or signal.project_id
        missing = [
            FieldViolation(name, f"required: the message carries no {where}")
            for name, value, where in (("sub", sub, "uuid.sub"), ("project_id", project, "payload.app_info.projectId"))
            if not value
        ]
        if missing:
            raise invalid_argument(missing)
        current_caller().check("project", project)
        record = ConsentRecord(project, sub, signal.status, signal.push_allowed, self._clock.time(), signal.source)
        await self._store.put(record)
        return pb.RecordConsentResponse(recorded=True, consent=consent_proto(record))

    async def GetConsent(self, request: pb.GetConsentRequest, context: Context) -> pb.GetConsentResponse:
        missing = [FieldViolation(n, "required") for n in ("project_id", "sub") if not getattr(request, n)]
        if missing:
            raise invalid_argument(missing)
        current_caller().check("project", request.project_id)
        record = await self._store.get(request.project_id, request.sub)
        if record is None:
            return pb.GetConsentResponse(found=False)
        return pb.GetConsentResponse(found=True, consent=consent_proto(record))
