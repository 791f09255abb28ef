"""TemplateService: the registry, read-only, and content validation with rendering."""

from __future__ import annotations

from typing import Any

import grpc
from smartpush.gateway.v1 import errors_pb2, template_service_pb2, template_service_pb2_grpc

from gateway.errors import GatewayError
from gateway.templates import TemplateRegistry

pb = template_service_pb2
Context = grpc.aio.ServicerContext[Any, Any]


class TemplateServicer(template_service_pb2_grpc.TemplateServiceServicer):
    def __init__(self, registry: TemplateRegistry) -> None:
        self._registry = registry

    def _get(self, template_id: str) -> pb.Template:
        template = self._registry.get(template_id)
        if template is None:
            raise GatewayError(
                errors_pb2.ERROR_REASON_TEMPLATE_UNKNOWN,
                f"template {template_id[:64]!r} is not in this gateway's registry",
                metadata={"template_id": template_id},
            )
        return template

    async def ListTemplates(self, request: pb.ListTemplatesRequest, context: Context) -> pb.ListTemplatesResponse:
        return pb.ListTemplatesResponse(templates=self._registry.all())

    async def GetTemplate(self, request: pb.GetTemplateRequest, context: Context) -> pb.GetTemplateResponse:
        return pb.GetTemplateResponse(template=self._get(request.id))

    async def ValidateTemplateContent(
        self, request: pb.ValidateTemplateContentRequest, context: Context
    ) -> pb.ValidateTemplateContentResponse:
        template = self._get(request.template_content.id)
        rendered = self._registry.check(
            template,
            request.template_content,
            list(request.surfaces),
            prefix="template_content",
            surface_path="surfaces[{i}]",
        )
        return pb.ValidateTemplateContentResponse(
            valid=not rendered.violations,
            violations=[pb.TemplateViolation(field=v.field, description=v.description) for v in rendered.violations],
            rendered_header=rendered.header,
            rendered_body=rendered.body,
        )
