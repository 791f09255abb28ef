"""Assembles the grpc.aio server: collaborators, servicers, health, reflection, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # stubs lack aio
from grpc_reflection.v1alpha import reflection
from smartpush.gateway.v1 import (
    permission_service_pb2,
    permission_service_pb2_grpc,
    push_service_pb2,
    push_service_pb2_grpc,
    smartapp_service_pb2,
    smartapp_service_pb2_grpc,
    template_service_pb2,
    template_service_pb2_grpc,
)

from gateway.api.permission_service import PermissionServicer
from gateway.api.push_service import PushServicer
from gateway.api.smartapp_service import SmartAppServicer
from gateway.api.template_service import TemplateServicer
from gateway.clock import Clock, SystemClock
from gateway.config import Settings
from gateway.consent import ConsentStore, SqliteConsentStore
from gateway.idempotency import IdempotencyCache
from gateway.push import PushSender
from gateway.readiness import Readiness
from gateway.smartpush import wire
from gateway.smartpush.client import SmartPushClient
from gateway.smartpush.http import make_http_client, make_transport
from gateway.smartpush.profiles import TokenProviders
from gateway.telemetry import Telemetry, build_telemetry
from gateway.telemetry.server_spans import instrument
from gateway.templates import TemplateRegistry

log = logging.getLogger(__name__)

_PUSH = push_service_pb2.DESCRIPTOR.services_by_name["PushService"]
_PERMISSION = permission_service_pb2.DESCRIPTOR.services_by_name["PermissionService"]
_TEMPLATE = template_service_pb2.DESCRIPTOR.services_by_name["TemplateService"]
_SMARTAPP = smartapp_service_pb2.DESCRIPTOR.services_by_name["SmartAppService"]
PUSH_SERVICE = _PUSH.full_name
API_SERVICES = tuple(s.full_name for s in (_PUSH, _PERMISSION, _TEMPLATE, _SMARTAPP))
SERVICE_NAMES = (*API_SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)

_SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.max_connection_age_ms", 30 * 60_000),  # lets clients rebalance across replicas
    ("grpc.max_connection_age_grace_ms", 30_000),
    ("grpc.so_reuseport", 1),
]


@dataclass
class Gateway:
    settings: Settings
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    http: httpx.AsyncClient
    tokens: TokenProviders
    sender: PushSender
    consent: ConsentStore
    templates: TemplateRegistry
    telemetry: Telemetry
    readiness: Readiness
    _stopped: bool = field(default=False)

    @property
    def address(self) -> str:
        host = self.settings.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first, then stop accepting and let in-flight calls finish within the grace."""
        if self._stopped:
            return
        self._stopped = True
        await self.readiness.stop()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.shutdown_grace_s if grace is None else grace)
        await self.http.aclose()
        await self.consent.close()
        self.telemetry.shutdown()  # flush spans and metrics last, so the drain is in them


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not (settings.tls_cert_file and settings.tls_key_file):
        return None
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


async def start_gateway(
    settings: Settings,
    *,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
    consent: ConsentStore | None = None,
    telemetry: Telemetry | None = None,
) -> Gateway:
    clock = clock or SystemClock()
    telemetry = telemetry or build_telemetry(settings.telemetry)
    # Sends go straight to the transport (see Upstream); a client handed in (tests) is used as is.
    upstream: httpx.AsyncBaseTransport | httpx.AsyncClient
    if http is None:
        upstream = make_transport(settings.smartpush)
        http = make_http_client(settings.smartpush, upstream)
    else:
        upstream = http
    consent = consent or SqliteConsentStore(settings.consent_db)
    templates = TemplateRegistry.from_settings(settings.templates, strict=settings.strict_templates)
    tokens = TokenProviders(settings, http, clock, telemetry)
    sender = PushSender(
        settings,
        SmartPushClient(upstream, settings.smartpush, clock, telemetry=telemetry),
        tokens,
        IdempotencyCache(clock, settings.idempotency_ttl_s, settings.idempotency_max_entries),
        clock,
        wire.MessageIds(int(time.time() * 1000)),
        templates,
        consent,
        telemetry,
    )
    server = grpc.aio.server(options=_SERVER_OPTIONS)
    push_service_pb2_grpc.add_PushServiceServicer_to_server(
        instrument(PushServicer(sender, clock), _PUSH, telemetry), server
    )
    permission_service_pb2_grpc.add_PermissionServiceServicer_to_server(
        instrument(PermissionServicer(consent, clock), _PERMISSION, telemetry), server
    )
    template_service_pb2_grpc.add_TemplateServiceServicer_to_server(
        instrument(TemplateServicer(templates), _TEMPLATE, telemetry), server
    )
    smartapp_service_pb2_grpc.add_SmartAppServiceServicer_to_server(
        instrument(SmartAppServicer(), _SMARTAPP, telemetry), server
    )
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(SERVICE_NAMES, server)
    creds = _credentials(settings)
    port = server.add_secure_port(settings.listen, creds) if creds else server.add_insecure_port(settings.listen)
    await server.start()
    readiness = Readiness(
        health,
        API_SERVICES,
        tokens.named.get(settings.default_profile) if settings.readiness_checks_token else None,
        settings.readiness_interval_s,
        settings.smartpush.token_timeout_s,
    )
    await readiness.start()
    return Gateway(settings, server, port, health, http, tokens, sender, consent, templates, telemetry, readiness)


async def run_until_signalled(gateway: Gateway) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: NOT_SERVING, draining in-flight calls")
    await gateway.stop()
