"""Assembles the grpc.aio server: collaborators, servicers, health, reflection, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import httpx
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # stubs lack aio
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2
from smartpush.gateway.v1 import (
    delivery_service_pb2,
    errors_pb2,
    permission_service_pb2,
    push_service_pb2,
    smartapp_service_pb2,
    template_service_pb2,
)

from gateway.api.delivery_service import DeliveryServicer
from gateway.api.edge import Drain, Edge
from gateway.api.permission_service import PermissionServicer
from gateway.api.push_service import PushServicer
from gateway.api.smartapp_service import SmartAppServicer
from gateway.api.template_service import TemplateServicer
from gateway.auth.callers import Callers
from gateway.auth.gate import Gate
from gateway.auth.identity import Authenticator, MtlsAuth, NoAuth
from gateway.clock import Clock, SystemClock
from gateway.config import ConfigError, Settings
from gateway.consent import ConsentStore, StoredConsent
from gateway.delivery_status import DeliveryStatuses
from gateway.errors import GatewayError
from gateway.idempotency import Idempotency
from gateway.push import PushSender
from gateway.quotas import Quotas
from gateway.readiness import LIVENESS, STATE_STORE, Readiness
from gateway.shedding import UpstreamSlots
from gateway.smartpush.client import SmartPushClient
from gateway.smartpush.http import make_http_client, make_transport
from gateway.smartpush.profiles import TokenProviders
from gateway.state import StateStore, open_store
from gateway.state.message_ids import MessageIds
from gateway.telemetry import Telemetry, build_telemetry
from gateway.templates import TemplateRegistry

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

_HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
_REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
_PUSH = push_service_pb2.DESCRIPTOR.services_by_name["PushService"]
_PERMISSION = permission_service_pb2.DESCRIPTOR.services_by_name["PermissionService"]
_TEMPLATE = template_service_pb2.DESCRIPTOR.services_by_name["TemplateService"]
_SMARTAPP = smartapp_service_pb2.DESCRIPTOR.services_by_name["SmartAppService"]
_DELIVERY = delivery_service_pb2.DESCRIPTOR.services_by_name["DeliveryService"]
API_SERVICES = tuple(s.full_name for s in (_PUSH, _PERMISSION, _TEMPLATE, _SMARTAPP, _DELIVERY))
SERVICE_NAMES = (*API_SERVICES, _HEALTH.full_name, reflection.SERVICE_NAME)
_STOP_SLACK_S = 0.5
Context = grpc.aio.ServicerContext[Any, Any]

_SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.max_connection_age_ms", 30 * 60_000),  # lets clients rebalance across replicas
    ("grpc.max_connection_age_grace_ms", 30_000),
    ("grpc.so_reuseport", 1),
]


def _server_options(settings: Settings) -> list[tuple[str, int]]:
    # gRPC core queues calls the application has not picked up yet and, past max_pending_requests,
    # drops some at random with a bare CANCELLED (a 2,000-call burst lost ~10% that way). Keep that
    # queue well above the edge's own cap, so an overload is answered OVERLOADED with a retry delay.
    pending = max(1000, 2 * settings.load.max_concurrent_rpcs)
    return [
        *_SERVER_OPTIONS,
        ("grpc.server.max_pending_requests", pending),
        ("grpc.server.max_pending_requests_hard_limit", 2 * pending),
    ]


class HealthEdge:
    """grpc.health.v1 through the edge: an unknown service is NOT_FOUND with ErrorInfo, like every error."""

    def __init__(self, health: health_aio.HealthServicer, services: frozenset[str]) -> None:
        self._health = health
        self._services = services

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Context) -> health_pb2.HealthCheckResponse:
        if request.service not in self._services:
            raise GatewayError(
                errors_pb2.ERROR_REASON_SERVICE_UNKNOWN,
                f"no health status for service {request.service[:64]!r}",
                metadata={"known_services": ",".join(sorted(s or '""' for s in self._services))},
            )
        response: health_pb2.HealthCheckResponse = await self._health.Check(request, context)
        return response

    async def List(self, request: Any, context: Context) -> Any:
        out = health_pb2.HealthListResponse()  # type: ignore[attr-defined]  # newer than the type stubs
        for service in sorted(self._services):
            out.statuses[service].CopyFrom(
                await self._health.Check(health_pb2.HealthCheckRequest(service=service), context)
            )
        return out

    def Watch(self, request: health_pb2.HealthCheckRequest, context: Context) -> AsyncIterator[object]:
        stream: AsyncIterator[object] = self._health.Watch(request, context)
        return stream


@dataclass
class Gateway:
    settings: Settings
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    http: httpx.AsyncClient
    tokens: TokenProviders
    client: SmartPushClient
    drain: Drain
    store: StateStore
    idempotency: Idempotency
    jwks_http: httpx.AsyncClient | None
    receiver: web.AppRunner | None
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
        """NOT_SERVING at once (health keeps answering), refuse new calls, let accepted ones finish.

        Accepted calls run to completion within the grace: the SmartPush client starts no attempt
        that would run past it, so none is cut off mid-flight (and none answered CANCELLED).
        """
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace_s if grace is None else grace
        await self.readiness.stop()
        await self.health.enter_graceful_shutdown()
        self.drain.closing = True
        self.client.drain_until(time.monotonic() + grace)
        log.info("draining", extra={"in_flight": self.drain.in_flight, "timeout_s": grace})
        deadline = time.monotonic() + grace + _STOP_SLACK_S
        if not await self.drain.wait_idle(grace + _STOP_SLACK_S):
            log.warning("grace ran out with calls in flight", extra={"in_flight": self.drain.in_flight})
        # Sends whose callers left still finish and record their answer (bounded by the drain).
        if not await self.idempotency.wait_idle(max(0.0, deadline - time.monotonic())):
            log.warning("grace ran out with keyed sends still running")
        await self.server.stop(_STOP_SLACK_S)
        if self.receiver is not None:
            await self.receiver.cleanup()
        await self.http.aclose()
        if self.jwks_http is not None:
            await self.jwks_http.aclose()
        await self.consent.close()
        await self.store.close()
        self.telemetry.shutdown()  # flush spans and metrics last, so the drain is in them


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(setting, f"cannot read {str(path)!r} ({exc.strerror or type(exc).__name__})") from None


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise ConfigError("tls_cert_file", "set both tls_cert_file and tls_key_file, or neither")
    if not (settings.tls_cert_file and settings.tls_key_file):
        if settings.tls_client_ca_file:
            raise ConfigError("tls_client_ca_file", "client certificates need TLS: set tls_cert_file and tls_key_file")
        return None
    client_ca = _read("tls_client_ca_file", settings.tls_client_ca_file) if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(_read("tls_key_file", settings.tls_key_file), _read("tls_cert_file", settings.tls_cert_file))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def _check_listen(listen: str) -> None:
    """Bind the address once, as the server will (SO_REUSEPORT), so a bad one is our one clear line
    rather than gRPC core's log and a RuntimeError."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind(infos[0][4])
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or "not HOST:PORT"
        raise ConfigError("listen", f"cannot listen on {listen!r} ({why})") from None


def _authenticator(settings: Settings, clock: Clock) -> tuple[Authenticator, httpx.AsyncClient | None]:
    """The configured way to identify callers (and the HTTP client of a JWKS URL, to close)."""
    mode = settings.auth.mode
    if mode == "mtls":
        return MtlsAuth(), None
    if mode == "jwt":
        jwt = settings.auth.jwt
        assert jwt is not None  # the settings check it
        # Imported here: PyJWT and cryptography cost ~6 MB of every process that does not use them.
        from gateway.auth.jwks import KeySource
        from gateway.auth.jwt_auth import JwtAuth

        http = httpx.AsyncClient(timeout=5.0)  # the system trust store, not SmartPush's CA bundle
        try:
            keys = KeySource(clock, jwt.jwks_file, jwt.jwks_url, jwt.jwks_refresh_s, http)
        except (OSError, ValueError) as exc:
            raise ConfigError("auth.jwt.jwks_file", f"not a readable JWKS document ({exc})") from None
        return JwtAuth(jwt, keys, clock), http
    return NoAuth(), None


def lease_s(settings: Settings) -> float:
    """How long an idempotency claim holds unless renewed: a few attempts' worth, so a claim of a
    process that died lapses soon; a running send renews it."""
    sp = settings.smartpush
    return max(10.0, 2 * (sp.token_timeout_s + sp.connect_timeout_s + sp.request_timeout_s))


async def start_gateway(
    settings: Settings,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    consent: ConsentStore | None = None,
    telemetry: Telemetry | None = None,
    store: StateStore | None = None,
) -> Gateway:
    clock = clock or SystemClock()
    telemetry = telemetry or build_telemetry(settings.telemetry)
    # Sends go straight to the transport (see Upstream); token requests, rare, use a client over it.
    transport = transport or make_transport(settings.smartpush)
    http = make_http_client(settings.smartpush, transport)
    creds = _credentials(settings)  # before anything starts: a bad TLS file stops start-up
    _check_listen(settings.listen)
    store = store or open_store(settings.state, clock)
    telemetry.observe_state_files(store.file_sizes)
    consent = consent or StoredConsent(store)
    idempotency = Idempotency(store, clock, settings.idempotency_ttl_s, lease_s(settings))
    statuses = DeliveryStatuses(settings.callbacks, store, clock, telemetry)
    templates = TemplateRegistry.from_settings(settings.templates, strict=settings.strict_templates)
    routes = TokenProviders(settings, http, clock, telemetry)
    client = SmartPushClient(transport, settings.smartpush, clock, telemetry=telemetry)
    sender = PushSender(
        settings,
        client,
        routes,
        idempotency,
        clock,
        MessageIds(store, clock),
        templates,
        consent,
        Quotas(settings.quotas, store, clock),
        UpstreamSlots(settings.load.max_upstream_in_flight, settings.load.retry_after_s),
        statuses,
        telemetry,
    )
    authenticator, jwks_http = _authenticator(settings, clock)
    server = grpc.aio.server(options=_server_options(settings))
    drain = Drain()
    edge = Edge(telemetry, drain, Gate(authenticator, Callers(settings), settings.load))
    edge.register(server, _PUSH, PushServicer(sender, clock, telemetry))
    edge.register(server, _PERMISSION, PermissionServicer(consent, clock))
    edge.register(server, _TEMPLATE, TemplateServicer(templates))
    edge.register(server, _SMARTAPP, SmartAppServicer())
    edge.register(server, _DELIVERY, DeliveryServicer(statuses, clock, drain))
    health = health_aio.HealthServicer()
    health_names = frozenset(("", LIVENESS, STATE_STORE, *API_SERVICES))
    edge.register(server, _HEALTH, HealthEdge(health, health_names), api=False)
    edge.register(server, _REFLECTION, reflection_aio.ReflectionServicer(SERVICE_NAMES), api=False)
    try:
        port = server.add_secure_port(settings.listen, creds) if creds else server.add_insecure_port(settings.listen)
    except RuntimeError:
        raise ConfigError("listen", f"cannot listen on {settings.listen!r} (in use, or not an address here)") from None
    receiver = None
    if settings.callbacks.enabled:
        from gateway.callback_receiver import start_receiver  # aiohttp's server side, only when used

        try:
            receiver, receiver_port = await start_receiver(statuses, settings.callbacks, telemetry)
        except OSError as exc:
            raise ConfigError(
                "callbacks.listen", f"cannot listen on {settings.callbacks.listen!r} ({exc.strerror})"
            ) from None
        log.info("delivery-status receiver listening", extra={"port": receiver_port})
    await server.start()
    readiness = Readiness(
        health,
        API_SERVICES,
        routes.named.get(settings.default_profile) if settings.readiness_checks_token else None,
        settings.readiness_interval_s,
        settings.smartpush.token_timeout_s,
        store,
    )
    await readiness.start()
    return Gateway(
        settings,
        server,
        port,
        health,
        http,
        routes,
        client,
        drain,
        store,
        idempotency,
        jwks_http,
        receiver,
        consent,
        templates,
        telemetry,
        readiness,
    )


async def run_until_signalled(gateway: Gateway) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: NOT_SERVING, draining in-flight calls")
    await gateway.stop()
