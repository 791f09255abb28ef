"""POST to SmartPush with a token, bounded by the caller's deadline, retried per design §5.

Retries are the only retry layer: transport errors, 429 and 5xx; full jitter; Retry-After
honoured; the same RqUID on every attempt; never past the deadline. A 401 invalidates the
token and retries once with a fresh one.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from smartpush.gateway.v1 import errors_pb2

from gateway.clock import Clock
from gateway.config import SmartPushSettings
from gateway.errors import GatewayError
from gateway.smartpush.http import Upstream
from gateway.smartpush.retry import backoff_delay, parse_retry_after
from gateway.smartpush.tokens import TokenProvider
from gateway.telemetry import Telemetry
from gateway.telemetry.http_spans import post_attributes

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    retry_after_s: float | None
    attempts: int


@dataclass(slots=True)
class _Failure:
    kind: str  # "transport", "rate_limited", "server"
    detail: str
    http_status: int | None = None
    retry_after_s: float | None = None


def deadline_exceeded(rq_uid: str, message: str) -> GatewayError:
    return GatewayError(
        grpc.StatusCode.DEADLINE_EXCEEDED, errors_pb2.ERROR_REASON_DEADLINE_TOO_SHORT, message, rq_uid=rq_uid
    )


class _ClientUpstream:
    """Sends through an AsyncClient (tests hand one in with a MockTransport or respx)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def post(self, url: str, body: bytes, headers: dict[str, str], limits: httpx.Timeout) -> httpx.Response:
        return await self._client.post(url, content=body, headers=headers, timeout=limits)


class SmartPushClient:
    def __init__(
        self,
        http: httpx.AsyncBaseTransport | httpx.AsyncClient,
        settings: SmartPushSettings,
        clock: Clock,
        rand: Callable[[], float] = random.random,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._t = telemetry or Telemetry.disabled()
        self._endpoint = settings.endpoint
        self._upstream = Upstream(http) if isinstance(http, httpx.AsyncBaseTransport) else _ClientUpstream(http)
        self._settings = settings
        self._clock = clock
        self._rand = rand
        self._span_attrs: dict[str, dict[str, str | int]] = {}  # per URL (one per profile): parsed once

    async def post(
        self,
        url: str,
        body: bytes,
        tokens: TokenProvider,
        rq_uid: str,
        deadline: float | None,
        callback_url: str = "",
    ) -> Answer:
        s = self._settings
        attempt = 0
        sent = 0  # HTTP attempts so far, for http.request.resend_count
        refreshed = False
        while True:
            remaining = self._remaining(deadline)
            if remaining is not None and remaining < s.min_attempt_s:
                raise deadline_exceeded(rq_uid, "the caller's deadline leaves no time for the SmartPush call")
            failure: _Failure
            timeout = httpx.Timeout(
                min(s.request_timeout_s, remaining) if remaining else s.request_timeout_s, connect=s.connect_timeout_s
            )
            try:
                async with asyncio.timeout(remaining):
                    token = await tokens.token()
                    response = await self._attempt(url, body, self._headers(token, rq_uid, callback_url), timeout, sent)
                    payload = response.content
            except TimeoutError:
                raise deadline_exceeded(rq_uid, "the caller's deadline passed while SmartPush was answering") from None
            except httpx.TransportError as exc:
                failure = _Failure("transport", type(exc).__name__)
            else:
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock.time())
                if status == 401:
                    tokens.invalidate(token)
                    if not refreshed:
                        refreshed = True
                        sent += 1
                        self._t.retries.add(1, {"smartpush.retry_reason": "unauthorized"})
                        log.info("SmartPush rejected the token; refreshing once", extra={"rq_uid": rq_uid})
                        continue
                    raise GatewayError(
                        grpc.StatusCode.UNAVAILABLE,
                        errors_pb2.ERROR_REASON_UPSTREAM_AUTH,
                        "SmartPush rejected the gateway's credentials even with a fresh token",
                        rq_uid=rq_uid,
                        metadata={"http_status": "401", "profile": tokens.name},
                    )
                if status == 429:
                    failure = _Failure("rate_limited", "HTTP 429", status, retry_after)
                elif status >= 500:
                    failure = _Failure("server", f"HTTP {status}", status, retry_after)
                else:
                    return Answer(status, payload, retry_after, attempt + 1)
            attempt += 1
            delay = backoff_delay(attempt - 1, s.backoff_initial_s, s.backoff_max_s, self._rand)
            if failure.retry_after_s is not None:
                delay = max(delay, failure.retry_after_s)
            if attempt >= s.max_attempts:
                raise self._give_up(failure, rq_uid, attempt, "attempts exhausted")
            remaining = self._remaining(deadline)
            if remaining is not None and delay + s.min_attempt_s > remaining:
                raise self._give_up(failure, rq_uid, attempt, "no time left before the deadline")
            sent += 1
            self._t.retries.add(1, {"smartpush.retry_reason": failure.kind})
            log.info(
                "retrying SmartPush call",
                extra={
                    "rq_uid": rq_uid,
                    "attempt": attempt + 1,
                    "retry_reason": failure.kind,
                    "delay_s": delay,
                },
            )
            await self._clock.sleep(delay)

    async def _attempt(
        self, url: str, body: bytes, headers: dict[str, str], limits: httpx.Timeout, resend: int
    ) -> httpx.Response:
        """One HTTP attempt, as a CLIENT span (HTTP client semantic conventions) and a duration sample."""
        attrs = self._span_attrs.get(url)
        if attrs is None:
            attrs = self._span_attrs[url] = post_attributes(url, self._endpoint)
        if resend:
            attrs = {**attrs, "http.request.resend_count": resend}
        start = time.perf_counter()
        # A leaf span: started, injected and ended here, never made current (nothing runs under it).
        span = self._t.tracer.start_span("POST", kind=SpanKind.CLIENT, attributes=attrs)
        try:
            propagate.inject(headers, context=trace.set_span_in_context(span))
            try:
                response = await self._upstream.post(url, body, headers, limits)
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                self._t.upstream_duration.record(
                    (time.perf_counter() - start) * 1000,
                    {"smartpush.endpoint": self._endpoint, "error.type": type(exc).__name__},
                )
                raise
            status = response.status_code
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_attribute("error.type", str(status))
                if status >= 500 or status in (401, 429):
                    span.set_attribute(
                        "smartpush.retry_reason",
                        "unauthorized" if status == 401 else "rate_limited" if status == 429 else "server",
                    )
                span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
            self._t.upstream_duration.record(
                (time.perf_counter() - start) * 1000,
                {"smartpush.endpoint": self._endpoint, "http.response.status_code": status},
            )
            return response
        finally:
            span.end()

    def _remaining(self, deadline: float | None) -> float | None:
        return None if deadline is None else deadline - self._clock.monotonic()

    @staticmethod
    def _headers(token: str, rq_uid: str, callback_url: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {token}",
            "RqUID": rq_uid,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if callback_url:
            headers["callbackUrl"] = callback_url
        return headers

    @staticmethod
    def _give_up(failure: _Failure, rq_uid: str, attempts: int, why: str) -> GatewayError:
        metadata = {"attempts": str(attempts)}
        if failure.http_status is not None:
            metadata["http_status"] = str(failure.http_status)
        if failure.kind == "rate_limited":
            code, reason = grpc.StatusCode.RESOURCE_EXHAUSTED, errors_pb2.ERROR_REASON_UPSTREAM_RATE_LIMITED
        else:
            code, reason = grpc.StatusCode.UNAVAILABLE, errors_pb2.ERROR_REASON_UPSTREAM_UNAVAILABLE
        return GatewayError(
            code,
            reason,
            f"SmartPush unavailable ({failure.detail}) after {attempts} attempt(s), {why}",
            rq_uid=rq_uid,
            retry_after_s=failure.retry_after_s,
            metadata=metadata,
        )
