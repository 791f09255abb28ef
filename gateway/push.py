"""The Send use case: validate -> idempotency -> map -> token -> POST -> classify (design §3).

Repeated proto fields are read by slice (`[:]`) on this path: iterating one directly ends in an
IndexError raised and caught inside the loop (gateway/smartpush/wire.py)."""

from __future__ import annotations

import dataclasses

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from smartpush.gateway.v1 import delivery_pb2, errors_pb2, push_service_pb2, template_pb2

from gateway.api.edge import current_caller
from gateway.auth.callers import Caller
from gateway.clock import Clock
from gateway.config import Settings
from gateway.consent import ConsentStore, require_consent
from gateway.current_span import current_span
from gateway.delivery_status import DeliveryStatuses
from gateway.errors import GatewayError, invalid_argument
from gateway.idempotency import Idempotency
from gateway.quotas import Quotas
from gateway.send_keys import SendKey, fingerprint, new_rq_uid, scoped_key, send_key
from gateway.shedding import UpstreamSlots
from gateway.smartpush import wire
from gateway.smartpush.answers import Outcome, classify
from gateway.smartpush.client import SendCall, SmartPushClient
from gateway.smartpush.profiles import TokenProviders
from gateway.smartpush.surfaces import SURFACE_TO_WIRE
from gateway.state.message_ids import MessageIds
from gateway.telemetry import Telemetry
from gateway.telemetry.policy import allowed, field_label
from gateway.templates import Rendered, TemplateRegistry
from gateway.validation import validate_send

SendRequest = push_service_pb2.SendRequest
SendResponse = push_service_pb2.SendResponse
_MODE_NAMES = {v.number: v.name for v in delivery_pb2.DeliveryMode.DESCRIPTOR.values}


class PushSender:
    def __init__(
        self,
        settings: Settings,
        client: SmartPushClient,
        routes: TokenProviders,
        idempotency: Idempotency,
        clock: Clock,
        message_ids: MessageIds,
        templates: TemplateRegistry,
        consent: ConsentStore,
        quotas: Quotas,
        slots: UpstreamSlots,
        statuses: DeliveryStatuses,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._statuses = statuses
        self._quotas = quotas
        self._slots = slots
        self._templates = templates
        self._consent = consent
        self._t = telemetry or Telemetry.disabled()
        # Read per send: a pydantic model's attribute goes through its class's __getattr__ hook.
        self._endpoint = settings.smartpush.endpoint
        self._wire = settings.smartpush.wire
        self._require_consent = settings.require_consent
        self._client = client
        self._routes = routes
        self._idempotency = idempotency
        self._clock = clock
        self._message_ids = message_ids

    def key(self, req: SendRequest) -> SendKey:
        """The send's RqUID (and store key, when it has an idempotency key), made once per send."""
        if req.idempotency_key:
            return send_key(self._idempotency_scope(req))
        return SendKey(new_rq_uid())

    def _idempotency_scope(self, req: SendRequest) -> str:
        who = req.credentials.client_id if req.HasField("credentials") else self._routes.resolve_name(req)
        # Keys are the caller's own: another caller's key never replays (or blocks) this one.
        caller = current_caller()
        return scoped_key(f"{caller.name}\0{who}", req.project_id, req.idempotency_key)

    async def send(self, req: SendRequest, key: SendKey, deadline: float | None) -> SendResponse:
        rq_uid = key.rq_uid
        span = current_span() if self._t.enabled else trace.INVALID_SPAN
        if span.is_recording():
            span.set_attributes(self._attributes(req, rq_uid))
        rendered = await self._check(req)
        # A keyed send, once started, is never abandoned: its attempt runs to its end even past
        # the caller's deadline, so the answer can be recorded and replayed to the retry.
        keyed = bool(req.idempotency_key) and not req.validate_only
        call = SendCall(rq_uid, deadline, self._routes.route(req), req.callback_url, finish_started=keyed)
        if self._endpoint == "lite":
            body = wire.encode(wire.lite_request(req, self._wire))
        else:
            body = wire.encode(wire.extended_request(req, self._wire, await self._message_ids.next()))
        if req.validate_only:
            return SendResponse(
                rq_uid=rq_uid,
                request_json=body.decode(),
                upstream_url=call.route.url,
                rendered_header=rendered.header if rendered else "",
                rendered_body=rendered.body if rendered else "",
            )

        caller = current_caller()

        async def deliver() -> SendResponse:
            # Cheapest refusals first, and nothing charged for a call that cannot be sent now.
            self._client.ensure_time(call)
            with self._slots.take():
                await self._quotas.charge(caller, call.route.name, req.project_id, req.sub)
                sending = call
                if self._statuses.enabled:  # SmartPush calls the gateway back, not the caller
                    url = await self._statuses.register(rq_uid, caller.name)
                    sending = dataclasses.replace(call, callback_url=url)
                return await self._deliver(req, sending, body, span)

        if not keyed:
            return await deliver()
        assert key.store_key is not None  # keyed: made by send_key
        return await self._idempotency.run(key.store_key, fingerprint(req), deadline, deliver)

    async def _check(self, req: SendRequest) -> Rendered | None:
        """Every rule that needs no upstream call: fields, the template registry, consent."""
        # No span of its own: validation is a few microseconds of CPU, and its failures show on
        # the server span (status, smartpush.error_reason) and in smartpush.validation.failures.
        try:
            violations = validate_send(req, self._endpoint)
            if violations:
                raise invalid_argument(violations)
            self._check_grants(current_caller(), req)
            rendered = self._check_template(req)
            if self._require_consent:
                await require_consent(self._consent, req.project_id, req.sub)
        except GatewayError as err:
            for v in err.field_violations:
                self._t.validation_failures.add(1, {"smartpush.validation.field": field_label(v.field)})
            raise
        return rendered

    async def _deliver(self, req: SendRequest, call: SendCall, body: bytes, span: trace.Span) -> SendResponse:
        answer = await self._client.post(call, body)
        surfaces = [d.surface for d in req.delivery.destinations[:]]
        sequential = req.delivery.delivery_mode == delivery_pb2.DELIVERY_MODE_SEQUENTIAL
        outcome = classify(
            answer.status,
            answer.body,
            surfaces,
            sequential=sequential,
            retry_after_s=answer.retry_after_s,
            template_error_codes=self._wire.template_error_codes,
        )
        if self._t.enabled:  # (read from the outcome: a message's repeated field makes a wrapper per read)
            for d in outcome.destinations:
                if d.reported:
                    self._t.results.add((d.status_code, SURFACE_TO_WIRE.get(d.surface, str(d.surface))))
            if span.is_recording():
                span.set_attribute("smartpush.status_codes", [d.status_code for d in outcome.destinations])
        return _response(call, outcome)

    def _check_grants(self, caller: Caller, req: SendRequest) -> None:
        caller.check("profile", self._routes.resolve_name(req))
        caller.check("project", req.project_id)
        config = req.delivery
        ids = [config.template_content.id] if config.HasField("template_content") else []
        ids += [d.template_content.id for d in config.destinations[:] if d.HasField("template_content")]
        for template_id in dict.fromkeys(ids):
            caller.check("template", template_id)

    def _attributes(self, req: SendRequest, rq_uid: str) -> dict[str, AttributeValue]:
        # Through the policy's allow-list: the sub only as a salted hash, never values or credentials.
        return allowed(
            {
                "smartpush.rq_uid": rq_uid,
                "smartpush.template_id": req.delivery.template_content.id,
                "smartpush.surfaces": [
                    SURFACE_TO_WIRE.get(d.surface, str(d.surface)) for d in req.delivery.destinations[:]
                ],
                "smartpush.delivery_mode": _MODE_NAMES.get(req.delivery.delivery_mode, str(req.delivery.delivery_mode)),
                "smartpush.profile": self._routes.resolve_name(req),
                "smartpush.project_id": req.project_id,
                "smartpush.sub_hash": self._t.hash_sub(req.sub) if req.sub else None,
                "smartpush.validate_only": req.validate_only,
            }
        )

    def _check_template(self, req: SendRequest) -> Rendered | None:
        """Each template content in the request (shared, and each destination's own) against the registry."""
        config = req.delivery
        dests = config.destinations[:]  # (a slice: iterating a repeated field ends in an IndexError)
        groups: list[tuple[template_pb2.TemplateContent, str, list[int]]] = []
        shared = [i for i, d in enumerate(dests) if not d.HasField("template_content")]
        if config.HasField("template_content"):
            groups.append((config.template_content, "delivery.template_content", shared))
        for i, d in enumerate(dests):
            if d.HasField("template_content"):
                groups.append((d.template_content, f"delivery.destinations[{i}].template_content", [i]))
        first: Rendered | None = None
        violations = []
        for content, prefix, indices in groups:
            template = self._templates.get(content.id)
            if template is None:
                if self._templates.strict:
                    raise GatewayError(
                        errors_pb2.ERROR_REASON_TEMPLATE_UNKNOWN,
                        f"template {content.id[:64]!r} is not in this gateway's registry",
                        metadata={"template_id": content.id},
                    )
                continue  # not ours to judge: SmartPush checks it (1016/1017)
            surfaces = [dests[i].surface for i in indices]
            rendered = self._templates.check(template, content, surfaces, prefix=prefix, indices=indices)
            violations += rendered.violations
            first = first or rendered
        if violations:
            raise invalid_argument(violations)
        return first


def _response(call: SendCall, outcome: Outcome) -> SendResponse:
    return SendResponse(
        rq_uid=call.rq_uid,
        response_id=outcome.response_id,
        upstream_url=call.route.url,
        results=[
            push_service_pb2.DestinationResult(
                surface=d.surface,  # type: ignore[arg-type]
                status_code=d.status_code,
                description=d.description,
                reported=d.reported,
                device_statuses=[
                    push_service_pb2.DeviceStatus(
                        device_id=x.device_id,
                        product=x.product,
                        status_code=x.status_code,
                        description=x.description,
                    )
                    for x in d.devices
                ],
            )
            for d in outcome.destinations
        ],
    )
