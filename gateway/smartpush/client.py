"""POST to SmartPush with a token, bounded by the caller's deadline, retried per design §5.

Retries are the only retry layer: transport errors, 429 and 5xx; full jitter; Retry-After
honoured; the same RqUID on every attempt; never past the deadline. A 401 invalidates the
token and retries once with a fresh one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import httpx
from opentelemetry.trace import SpanKind, Status, StatusCode
from smartpush.gateway.v1 import errors_pb2

from gateway.clock import Clock
from gateway.config import SmartPushSettings
from gateway.errors import GatewayError
from gateway.smartpush.attempt_timer import AttemptTimer
from gateway.smartpush.http import Reply, Upstream
from gateway.smartpush.retry import Failure, RetryPolicy, classify_attempt, parse_retry_after
from gateway.smartpush.tokens import TokenProvider
from gateway.telemetry import Telemetry
from gateway.telemetry.histograms import sampled_context
from gateway.telemetry.http_spans import metric_key, post_attributes
from gateway.telemetry.propagation import inject_span

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    retry_after_s: float | None


@dataclass(frozen=True, slots=True)
class Route:
    """A resolved credential profile: its name, its token provider and the URL sends go to."""

    name: str
    tokens: TokenProvider
    url: str


@dataclass(frozen=True, slots=True)
class SendCall:
    """Built once per Send and passed down: the RqUID, the caller's deadline and the route."""

    rq_uid: str
    deadline: float | None  # monotonic seconds, None without a caller deadline
    route: Route
    callback_url: str = ""
    # The caller's deadline bounds when attempts start, not how long a started one runs: the
    # attempt runs to its own timeouts (and the drain), so its outcome is known and recorded.
    finish_started: bool = False


class LatencyEstimate:
    """How long SmartPush takes to answer now: a smoothed mean and deviation of recent attempts
    (RFC 6298's estimator); `bound` is what one attempt should be given (its RTO: mean + 4
    deviations), and a call is only started with a quarter more than that left, for the way back."""

    def __init__(self) -> None:
        self.mean: float | None = None
        self.deviation = 0.0

    def add(self, seconds: float) -> None:
        if self.mean is None:
            self.mean, self.deviation = seconds, seconds / 2
            return
        self.deviation = 0.75 * self.deviation + 0.25 * abs(self.mean - seconds)
        self.mean = 0.875 * self.mean + 0.125 * seconds

    def bound(self) -> float:
        return 0.0 if self.mean is None else 1.25 * (self.mean + 4 * self.deviation)


def deadline_exceeded(message: str) -> GatewayError:
    return GatewayError(errors_pb2.ERROR_REASON_DEADLINE_TOO_SHORT, message)


class SmartPushClient:
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        settings: SmartPushSettings,
        clock: Clock,
        policy: RetryPolicy | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._t = telemetry or Telemetry.disabled()
        self._endpoint = settings.endpoint
        self._upstream = Upstream(transport)
        self._settings = settings
        # An attempt's own bounds, the same for every attempt: the caller's deadline (and a drain)
        # bound it through the timer around it (`_bounded`), which ends it first.
        total = settings.request_timeout_s
        self._limits = httpx.Timeout(total, connect=min(settings.connect_timeout_s, total))
        self._policy = policy or RetryPolicy.from_settings(settings)
        self._clock = clock
        # Per URL (one per profile), parsed once: the span's attributes and the metric's key.
        self._span_attrs: dict[str, tuple[dict[str, str | int], tuple[str | int, ...]]] = {}
        # Set when the gateway drains: nothing runs past it, so no call is cut off mid-attempt.
        self._stop_at: float | None = None
        self._timers: set[AttemptTimer] = set()  # of the attempts running now
        self.latency = LatencyEstimate()

    def drain_until(self, stop_at: float) -> None:
        """From now on no attempt runs past `stop_at` (monotonic), those already running included."""
        self._stop_at = stop_at
        loop = asyncio.get_running_loop()
        when = loop.time() + (stop_at - self._clock.monotonic())
        for timer in self._timers:
            current = timer.when()
            if current is None or current > when:
                timer.reschedule(when)

    def ensure_time(self, call: SendCall) -> None:
        """Refuse, before anything is sent or charged, a call whose deadline cannot cover one attempt
        at SmartPush's current pace: better a clear answer now than a push delivered to a caller
        that already gave up."""
        remaining, draining = self._remaining(call.deadline)
        need = max(self._policy.min_attempt_s, self.latency.bound())
        if remaining is not None and remaining < need:
            raise self._out_of_time(
                draining, f"leaves {max(remaining, 0):.2f} s; SmartPush answers in about {need:.2f} s now"
            )

    async def post(self, call: SendCall, body: bytes) -> Answer:
        failed = 0
        sent = 0  # HTTP attempts so far, for http.request.resend_count
        refreshed = False
        tokens = call.route.tokens
        while True:
            remaining, draining = self._remaining(call.deadline)
            if remaining is not None and remaining < self._policy.min_attempt_s:
                raise self._out_of_time(draining, "leaves no time for the SmartPush call")
            if call.finish_started:
                remaining, _ = self._remaining(None)  # only the drain bounds a started attempt
            try:
                token, response = await self._bounded(call, body, remaining, sent)
            except TimeoutError:
                _, draining = self._remaining(call.deadline)  # a drain may have begun meanwhile
                raise self._out_of_time(draining, "passed while SmartPush was answering") from None
            except httpx.TransportError as exc:
                sent += 1
                failure = Failure("transport", type(exc).__name__)
            else:
                sent += 1
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock.time())
                found = classify_attempt(response.status_code, retry_after)
                if found is None:
                    return Answer(response.status_code, response.content, retry_after)
                failure = found
                if failure.kind == "unauthorized":
                    tokens.invalidate(token)
                    if refreshed:
                        raise GatewayError(
                            errors_pb2.ERROR_REASON_UPSTREAM_AUTH,
                            "SmartPush rejected the gateway's credentials even with a fresh token",
                            metadata={"http_status": "401", "profile": call.route.name},
                        )
                    refreshed = True
                    self._t.retries.add(1, {"smartpush.retry_reason": "unauthorized"})
                    log.info("SmartPush rejected the token; refreshing once", extra={"rq_uid": call.rq_uid})
                    continue
            failed += 1
            delay = self._policy.delay(failed, failure)
            remaining, draining = self._remaining(call.deadline)
            why = self._policy.why_not_retry(failed, delay, remaining)
            if why is not None:
                raise _give_up(failure, failed, "the gateway is shutting down" if draining else why)
            self._t.retries.add(1, {"smartpush.retry_reason": failure.kind})
            log.info(
                "retrying SmartPush call",
                extra={"rq_uid": call.rq_uid, "attempt": failed + 1, "retry_reason": failure.kind, "delay_s": delay},
            )
            await self._clock.sleep(delay)

    async def _bounded(self, call: SendCall, body: bytes, remaining: float | None, sent: int) -> tuple[str, Reply]:
        """Token and POST within `remaining`; a drain that begins meanwhile tightens the bound."""
        timer = AttemptTimer.after(remaining)
        self._timers.add(timer)
        timer.start()
        try:
            token = await call.route.tokens.token()
            headers = self._headers(token, call.rq_uid, call.callback_url)
            return token, await self._attempt(call.route.url, body, headers, self._limits, sent)
        except asyncio.CancelledError as exc:
            if timer.stop(cancelled=True):
                raise TimeoutError from exc
            raise
        finally:
            timer.stop(cancelled=False)  # (a no-op after the line above)
            self._timers.discard(timer)

    def _remaining(self, deadline: float | None) -> tuple[float | None, bool]:
        """Time left before the caller's deadline or the end of a drain, whichever is first."""
        now = self._clock.monotonic()
        left = None if deadline is None else deadline - now
        if self._stop_at is not None and (left is None or self._stop_at - now < left):
            return self._stop_at - now, True
        return left, False

    @staticmethod
    def _out_of_time(draining: bool, what: str) -> GatewayError:
        if draining:
            return GatewayError(errors_pb2.ERROR_REASON_UPSTREAM_UNAVAILABLE, f"the gateway's shutdown grace {what}")
        return deadline_exceeded(f"the caller's deadline {what}")

    async def _attempt(
        self, url: str, body: bytes, headers: dict[str, str], limits: httpx.Timeout, resend: int
    ) -> Reply:
        """One HTTP attempt, as a CLIENT span (HTTP client semantic conventions) and a duration sample."""
        if not self._t.enabled:  # no span, sample or propagation header to make: the POST alone
            start = time.perf_counter()
            response = await self._upstream.post(url, body, headers, limits)
            self.latency.add(time.perf_counter() - start)
            return response
        found = self._span_attrs.get(url)
        if found is None:
            attrs = post_attributes(url, self._endpoint)
            found = self._span_attrs[url] = (attrs, metric_key(attrs))
        attrs, key = found
        if resend:
            attrs = {**attrs, "http.request.resend_count": resend}
        start = time.perf_counter()
        # A leaf span: started, injected and ended here, never made current (nothing runs under it).
        span = self._t.tracer.start_span("POST", kind=SpanKind.CLIENT, attributes=attrs)
        try:
            inject_span(headers, span)
            try:
                response = await self._upstream.post(url, body, headers, limits)
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                self._t.upstream_duration.record(
                    time.perf_counter() - start, (*key, None, type(exc).__name__), sampled_context(span)
                )
                raise
            status = response.status_code
            self.latency.add(time.perf_counter() - start)
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_attribute("error.type", str(status))
                if status >= 500 or status in (401, 429):
                    span.set_attribute(
                        "smartpush.retry_reason",
                        "unauthorized" if status == 401 else "rate_limited" if status == 429 else "server",
                    )
                span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
            self._t.upstream_duration.record(time.perf_counter() - start, (*key, status, None), sampled_context(span))
            return response
        finally:
            span.end()

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


def _give_up(failure: Failure, attempts: int, why: str) -> GatewayError:
    metadata = {"attempts": str(attempts)}
    if failure.http_status is not None:
        metadata["http_status"] = str(failure.http_status)
    rate_limited = failure.kind == "rate_limited"
    return GatewayError(
        errors_pb2.ERROR_REASON_UPSTREAM_RATE_LIMITED if rate_limited else errors_pb2.ERROR_REASON_UPSTREAM_UNAVAILABLE,
        f"SmartPush unavailable ({failure.detail}) after {attempts} attempt(s), {why}",
        retry_after_s=failure.retry_after_s,
        metadata=metadata,
    )
