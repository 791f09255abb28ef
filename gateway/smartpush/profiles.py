"""Credential profiles -> routes: a token provider and a send URL per profile, resolved once per call.

Inline credentials (when allowed) get a provider cached by identity, bounded.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import httpx
from smartpush.gateway.v1 import errors_pb2, push_service_pb2

from gateway.clock import Clock
from gateway.config import ProfileSettings, Settings
from gateway.errors import GatewayError
from gateway.smartpush.client import Route
from gateway.smartpush.tokens import Credentials, TokenProvider
from gateway.telemetry import Telemetry

_INLINE_CACHE = 64
INLINE = "inline"


class TokenProviders:
    def __init__(
        self, settings: Settings, http: httpx.AsyncClient, clock: Clock, telemetry: Telemetry | None = None
    ) -> None:
        self._t = telemetry or Telemetry.disabled()
        self._settings = settings
        self._default_profile = settings.default_profile  # read per send (a pydantic attribute is slower)
        self._http = http
        self._clock = clock
        sp = settings.smartpush
        self._routes: dict[str, Route] = {
            name: Route(
                name, self._provider(name, Credentials(p.client_id, p.resolve_secret(), p.scope), p), sp.send_url(p)
            )
            for name, p in settings.profiles.items()
        }
        self._inline_routes: OrderedDict[str, Route] = OrderedDict()

    def _provider(self, name: str, creds: Credentials, profile: ProfileSettings | None) -> TokenProvider:
        sp = self._settings.smartpush
        return TokenProvider(
            name,
            creds,
            sp.resolved_token_url(profile),
            self._http,
            self._clock,
            refresh_ratio=sp.token_refresh_ratio,
            timeout_s=sp.token_timeout_s,
            expires_at_unit=sp.token_expires_at_unit,
            telemetry=self._t,
        )

    @property
    def named(self) -> dict[str, TokenProvider]:
        return {name: route.tokens for name, route in self._routes.items()}

    def resolve_name(self, req: push_service_pb2.SendRequest) -> str:
        if req.HasField("credentials"):
            return INLINE
        return req.profile or self._default_profile

    def route(self, req: push_service_pb2.SendRequest) -> Route:
        if req.HasField("credentials"):
            return self._inline_route(req.credentials)
        name = req.profile or self._default_profile
        route = self._routes.get(name)
        if route is None:
            raise GatewayError(
                errors_pb2.ERROR_REASON_PROFILE_NOT_FOUND,
                f"credential profile {name[:64]!r} is not configured on this gateway",
                metadata={"profile": name},
            )
        return route

    def _inline_route(self, c: push_service_pb2.Credentials) -> Route:
        if not self._settings.allow_inline_credentials:
            raise GatewayError(
                errors_pb2.ERROR_REASON_INLINE_CREDENTIALS_DISABLED,
                "this gateway does not accept inline credentials; use a profile",
            )
        creds = Credentials(c.client_id, c.secret, c.scope or "SMART_PUSH")
        key = hashlib.sha256(f"{c.client_id}\0{c.secret}\0{creds.scope}".encode()).hexdigest()
        route = self._inline_routes.get(key)
        if route is None:
            route = Route(INLINE, self._provider(INLINE, creds, None), self._settings.smartpush.send_url())
            self._inline_routes[key] = route
            if len(self._inline_routes) > _INLINE_CACHE:
                self._inline_routes.popitem(last=False)
        self._inline_routes.move_to_end(key)
        return route
