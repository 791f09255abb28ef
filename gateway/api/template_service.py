"""TemplateService: the registry, read-only, and content validation with rendering."""

from __future__ import annotations

import grpc
from smartpush.gateway.v1 import errors_pb2, template_service_pb2, template_service_pb2_grpc

from gateway.api.guard import guarded
from gateway.errors import GatewayError
from gateway.templates import TemplateRegistry

pb = template_service_pb2
Context = grpc.aio.ServicerContext[object, object]


class TemplateServicer(template_service_pb2_grpc.TemplateServiceServicer):
    def __init__(self, registry: TemplateRegistry) -> None:
        self._registry = registry

    def _get(self, template_id: str) -> pb.Template:
        template = self._registry.get(template_id)
        if template is None:
            raise GatewayError(
                grpc.StatusCode.NOT_FOUND,
                errors_pb2.ERROR_REASON_TEMPLATE_UNKNOWN,
                f"template {template_id!r} is not in this gateway's registry",
                metadata={"template_id": template_id},
            )
        return template

    async def ListTemplates(self, request: pb.ListTemplatesRequest, context: Context) -> pb.ListTemplatesResponse:
        return pb.ListTemplatesResponse(templates=self._registry.all())

    async def GetTemplate(self, request: pb.GetTemplateRequest, context: Context) -> pb.GetTemplateResponse:
        async def run() -> pb.GetTemplateResponse:
            return pb.GetTemplateResponse(template=self._get(request.id))

        return await guarded(context, run())

    async def ValidateTemplateContent(
        self, request: pb.ValidateTemplateContentRequest, context: Context
    ) -> pb.ValidateTemplateContentResponse:
        async def run() -> pb.ValidateTemplateContentResponse:
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
                violations=[
                    pb.TemplateViolation(field=v.field, description=v.description) for v in rendered.violations
                ],
                rendered_header=rendered.header,
                rendered_body=rendered.body,
            )

        return await guarded(context, run())
