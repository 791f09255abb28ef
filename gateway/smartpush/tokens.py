"""OAuth tokens for SmartPush (reference §1, design §4).

One provider per credential profile: the token is cached, refreshed in the background
once `refresh_ratio` of its lifetime has passed, and at most one refresh is in flight
per provider (every other caller awaits that one). Secrets and tokens never leave
this module in a message or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from opentelemetry.trace import SpanKind, Status, StatusCode
from smartpush.gateway.v1 import errors_pb2

from gateway.clock import Clock
from gateway.errors import GatewayError
from gateway.telemetry import Telemetry
from gateway.telemetry.histograms import sampled_context
from gateway.telemetry.http_spans import metric_key, post_attributes

log = logging.getLogger(__name__)

# Token endpoint `code`s (reference §1.3) -> reason. All are the gateway's configuration
# problem, not the caller's: FAILED_PRECONDITION, so callers do not retry them blindly.
TOKEN_ERROR_REASONS: dict[int, errors_pb2.ErrorReason.ValueType] = {
    1: errors_pb2.ERROR_REASON_TOKEN_SCOPE_INVALID,
    4: errors_pb2.ERROR_REASON_TOKEN_CREDENTIALS_MALFORMED,
    5: errors_pb2.ERROR_REASON_TOKEN_SCOPE_EMPTY,
    6: errors_pb2.ERROR_REASON_TOKEN_CREDENTIALS_REJECTED,
    7: errors_pb2.ERROR_REASON_TOKEN_SCOPE_NOT_GRANTED,
}
# `expires_at` is epoch milliseconds; values below this are taken as seconds.
_MS_THRESHOLD = 10_000_000_000
_BACKGROUND_RETRY_S = 2.0


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    secret: str
    scope: str = "SMART_PUSH"

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(client_id={self.client_id!r}, scope={self.scope!r})"

    def basic(self) -> str:
        raw = f"{self.client_id}:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float  # wall-clock seconds
    refresh_at: float  # wall-clock seconds

    def __repr__(self) -> str:
        return f"Token(expires_at={self.expires_at}, refresh_at={self.refresh_at})"


def parse_expires_at(raw: object, unit: str = "auto") -> float:
    """Epoch seconds from `expires_at`: `ms` (what Sber's clients assume), `s`, or `auto` by magnitude."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError("expires_at is not a number")
    if unit == "ms" or (unit == "auto" and raw >= _MS_THRESHOLD):
        return raw / 1000.0
    return float(raw)


class TokenProvider:
    def __init__(
        self,
        name: str,
        credentials: Credentials,
        token_url: str,
        http: httpx.AsyncClient,
        clock: Clock,
        *,
        refresh_ratio: float = 0.8,
        timeout_s: float = 5.0,
        expires_at_unit: str = "auto",
        telemetry: Telemetry | None = None,
    ) -> None:
        self.name = name
        self._t = telemetry or Telemetry.disabled()
        self._http_attrs = post_attributes(token_url, "token")
        self._credentials = credentials
        self._url = token_url
        self._http = http
        self._clock = clock
        self._refresh_ratio = refresh_ratio
        self._timeout_s = timeout_s
        self._expires_at_unit = expires_at_unit
        self._token: Token | None = None
        self._inflight: asyncio.Task[Token] | None = None
        self.refreshes = 0  # completed token requests, for tests and metrics
        # After a failed early refresh the cached token keeps serving; wait before trying again
        # so a failing token endpoint is not asked once per call.
        self._background_not_before = 0.0

    async def token(self) -> str:
        """A valid token: cached, or the result of the one refresh in flight.

        A cache hit (nearly every call) makes no span: the design asks for one per token fetch,
        and a span per call measured ~60 µs. Fetches, waits and background refreshes get one.
        """
        token = self._token
        now = self._clock.time()
        if token is not None and now < token.expires_at:
            if now >= token.refresh_at and now >= self._background_not_before:
                with self._span("cache+background_refresh"):
                    self._start_refresh()  # early refresh in the background; the cached token still serves
            return token.value
        with self._span("wait" if self._inflight is not None else "refresh"):
            return (await asyncio.shield(self._start_refresh())).value

    def _span(self, source: str) -> AbstractContextManager[object]:
        return self._t.tracer.start_as_current_span(
            "smartpush.token", attributes={"smartpush.profile": self.name, "smartpush.token.source": source}
        )

    async def ensure(self) -> bool:
        """True once a valid token is cached, asking for one if needed (readiness); raises if none can be had."""
        token = self._token
        if token is None or self._clock.time() >= token.expires_at:
            await asyncio.shield(self._start_refresh())
        return True

    def invalidate(self, rejected: str) -> None:
        """Drop the token SmartPush rejected (401), unless a newer one already replaced it."""
        if self._token is not None and self._token.value == rejected:
            self._token = None

    def _start_refresh(self) -> asyncio.Task[Token]:
        if self._inflight is None:
            self._inflight = asyncio.get_running_loop().create_task(self._refresh())
            self._inflight.add_done_callback(self._refresh_done)
        return self._inflight

    def _refresh_done(self, task: asyncio.Task[Token]) -> None:
        self._inflight = None
        error = None if task.cancelled() else task.exception()
        outcome = "success"
        if task.cancelled():
            outcome = "cancelled"
        elif error is not None:
            outcome = error.reason_name if isinstance(error, GatewayError) else type(error).__name__
            self._background_not_before = self._clock.time() + _BACKGROUND_RETRY_S
            log.warning("token refresh failed", extra={"profile": self.name, "reason": outcome})
        self._t.token_refreshes.add(1, {"smartpush.profile": self.name, "outcome": outcome})

    async def _refresh(self) -> Token:
        with self._t.tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes=self._http_attrs) as span:
            start = time.perf_counter()
            status: int | None = None
            try:
                token, status = await self._request()
                return token
            except GatewayError as err:
                span.set_status(Status(StatusCode.ERROR, err.reason_name))
                span.set_attribute("error.type", err.reason_name)
                raise
            finally:
                if status is not None:
                    span.set_attribute("http.response.status_code", status)
                key = (*metric_key(self._http_attrs), status or 0, None)
                self._t.upstream_duration.record(time.perf_counter() - start, key, sampled_context(span))

    async def _request(self) -> tuple[Token, int]:
        rq_uid = str(uuid.uuid4())
        try:
            response = await self._http.post(
                self._url,
                content=urlencode({"scope": self._credentials.scope}).encode(),
                headers={
                    "Authorization": self._credentials.basic(),
                    "RqUID": rq_uid,
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
                timeout=self._timeout_s,
            )
            body = response.json() if response.content else {}
        except (httpx.HTTPError, ValueError) as exc:
            raise _unavailable(f"token endpoint unreachable or unreadable ({type(exc).__name__})", rq_uid) from None
        if not isinstance(body, dict):
            raise _unavailable(f"token endpoint answered HTTP {response.status_code} without JSON", rq_uid)
        access = body.get("access_token")
        if response.status_code == 200 and isinstance(access, str) and access:
            try:
                expires_at = parse_expires_at(body.get("expires_at"), self._expires_at_unit)
            except ValueError:
                raise _unavailable("token endpoint answered without a usable expires_at", rq_uid) from None
            now = self._clock.time()
            lifetime = max(expires_at - now, 0.0)
            token = Token(access, expires_at, now + lifetime * self._refresh_ratio)
            self._token = token
            self.refreshes += 1
            log.info("token refreshed", extra={"profile": self.name, "lifetime_s": round(lifetime, 1)})
            return token, response.status_code
        code = body.get("code")
        reason = TOKEN_ERROR_REASONS.get(code) if isinstance(code, int) else None
        if reason is not None:
            raise GatewayError(
                reason,
                f"SmartPush token endpoint refused profile {self.name!r}: code {code} "
                f"({_safe(body.get('message'))}), HTTP {response.status_code}",
                metadata={"token_error_code": str(code), "profile": self.name, "token_rq_uid": rq_uid},
            )
        raise _unavailable(f"token endpoint answered HTTP {response.status_code}", rq_uid)


def _safe(message: object) -> str:
    # The upstream message is shown to callers: keep it short and printable.
    return str(message)[:200].replace("\n", " ") if message is not None else "no message"


def _unavailable(message: str, rq_uid: str) -> GatewayError:
    # The token request's own RqUID, apart from the send's (which the edge adds as rq_uid).
    return GatewayError(errors_pb2.ERROR_REASON_TOKEN_UNAVAILABLE, message, metadata={"token_rq_uid": rq_uid})
