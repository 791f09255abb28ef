"""Credential profiles -> token providers (one per profile; inline credentials cached by identity)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import grpc
import httpx
from smartpush.gateway.v1 import errors_pb2, push_service_pb2

from gateway.clock import Clock
from gateway.config import ProfileSettings, Settings
from gateway.errors import GatewayError
from gateway.smartpush.tokens import Credentials, TokenProvider
from gateway.telemetry import Telemetry

_INLINE_CACHE = 64


class TokenProviders:
    def __init__(
        self, settings: Settings, http: httpx.AsyncClient, clock: Clock, telemetry: Telemetry | None = None
    ) -> None:
        self._t = telemetry or Telemetry.disabled()
        self._settings = settings
        self._http = http
        self._clock = clock
        self._named: dict[str, TokenProvider] = {
            name: self._provider(name, Credentials(p.client_id, p.resolve_secret(), p.scope), p)
            for name, p in settings.profiles.items()
        }
        self._inline: OrderedDict[str, TokenProvider] = OrderedDict()

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
            telemetry=self._t,
        )

    @property
    def named(self) -> dict[str, TokenProvider]:
        return self._named

    def profile_settings(self, name: str) -> ProfileSettings | None:
        return self._settings.profiles.get(name)

    def resolve_name(self, req: push_service_pb2.SendRequest) -> str:
        if req.HasField("credentials"):
            return "inline"
        return req.profile or self._settings.default_profile

    def for_request(self, req: push_service_pb2.SendRequest) -> TokenProvider:
        if req.HasField("credentials"):
            if not self._settings.allow_inline_credentials:
                raise GatewayError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    errors_pb2.ERROR_REASON_INLINE_CREDENTIALS_DISABLED,
                    "this gateway does not accept inline credentials; use a profile",
                )
            c = req.credentials
            creds = Credentials(c.client_id, c.secret, c.scope or "SMART_PUSH")
            key = hashlib.sha256(f"{c.client_id}\0{c.secret}\0{creds.scope}".encode()).hexdigest()
            provider = self._inline.get(key)
            if provider is None:
                provider = self._provider("inline", creds, None)
                self._inline[key] = provider
                if len(self._inline) > _INLINE_CACHE:
                    self._inline.popitem(last=False)
            self._inline.move_to_end(key)
            return provider
        name = req.profile or self._settings.default_profile
        provider = self._named.get(name)
        if provider is None:
            raise GatewayError(
                grpc.StatusCode.NOT_FOUND if req.profile else grpc.StatusCode.FAILED_PRECONDITION,
                errors_pb2.ERROR_REASON_PROFILE_NOT_FOUND,
                f"credential profile {name!r} is not configured on this gateway",
                metadata={"profile": name},
            )
        return provider
