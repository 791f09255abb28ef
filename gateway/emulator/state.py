"""The emulator's configuration, issued tokens, counters, recorded requests and faults."""

from __future__ import annotations

import bisect
import collections
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway.emulator.callbacks import CallbackConfig

DEMO_CLIENT_ID = "demo-client"
DEMO_SECRET = "demo-secret"  # noqa: S105 - the emulator's built-in demo credential, not a real secret
# The template id of the seed's `$smartPush.send` example.
DEMO_TEMPLATE_ID = "49061553-27c7-4471-9145-d8d6137c57da"


class ClientConfig(BaseModel):
    secret: str
    scopes: list[str] = Field(default_factory=lambda: ["SMART_PUSH"])


class TemplateConfig(BaseModel):
    header_variables: list[str] = Field(default_factory=list)
    body_variables: list[str] = Field(default_factory=list)
    # Empty: any project may use the template.
    projects: list[str] = Field(default_factory=list)


class EmulatorConfig(BaseModel):
    # Delivery-status callbacks to a send's `callbackUrl` (reference §6; inferred shape).
    callbacks: CallbackConfig = Field(default_factory=CallbackConfig)
    clients: dict[str, ClientConfig] = Field(default_factory=lambda: {DEMO_CLIENT_ID: ClientConfig(secret=DEMO_SECRET)})
    token_ttl_s: float = 1800.0
    # `expires_at` in epoch milliseconds (the gateway's documented unit) or seconds.
    expires_at_unit: Literal["ms", "s"] = "ms"
    templates: dict[str, TemplateConfig] = Field(default_factory=lambda: {DEMO_TEMPLATE_ID: TemplateConfig()})
    # Unknown template ids answer 1016 when true; when false any id is accepted without variable checks.
    strict_templates: bool = True
    # The code for variables that do not match the template: 1017 (salutejs) or 1016 (the S4 doc).
    template_mismatch_code: Literal[1016, 1017] = 1017
    disabled_projects: list[str] = Field(default_factory=list)
    # Sliding limits per minute, hour and day, overall and per user (reference §8); 0 = unlimited.
    overall_limit_per_minute: int = 0
    overall_limit_per_hour: int = 0
    overall_limit_per_day: int = 0
    per_user_limit_per_minute: int = 0
    per_user_limit_per_hour: int = 0
    per_user_limit_per_day: int = 0
    # Token endpoint rate limit (reference §8, GW G2: at most 10 requests a second); 0 = unlimited.
    token_limit_per_second: int = 10
    # Force a status code for every destination on a surface, e.g. {"SBERBOX": 1004}.
    surface_status: dict[str, int] = Field(default_factory=dict)
    # Strict by default: only what the gateway's default configuration should send is accepted,
    # one variant per disagreement (reference §13), so a mapping bug cannot pass unnoticed.
    # `lenient: true` accepts every variant any source shows (and unknown keys).
    lenient: bool = False
    # The variant expected where sources disagree; set one to prove the matching gateway switch.
    request_payload: Literal["any", "wrapped", "unwrapped"] = "wrapped"
    delivery_mode_case: Literal["any", "upper", "lower"] = "upper"
    device_deeplink_key: Literal["any", "deeplink", "deepLink"] = "deeplink"
    device_serial_filter: Literal["any", "array", "object"] = "array"
    # `templateContent.timeFrame` (reference §3.3, salutejs, smart_app_framework); `destination`
    # is the undocumented placement beside templateContent.
    time_frame_placement: Literal["any", "template_content", "destination"] = "template_content"
    # `payload.result`: one object, as documented (reference §5.1), or a list per delivered destination.
    result_shape: Literal["object", "list"] = "object"
    # HTTP status of an answer whose destinations all failed (undocumented; 200 by default).
    business_error_http_status: int = 200
    record_limit: int = 1000


class Faults(BaseModel):
    """Standing faults, applied at random to every matching request."""

    latency_ms: float = 0.0
    # {"503": 0.2, "429": 0.1}: probability of answering with that HTTP status instead.
    error_rates: dict[str, float] = Field(default_factory=dict)
    retry_after_s: int | None = None
    drop_rate: float = 0.0
    endpoint: Literal["any", "send", "token"] = "any"


class QueuedFault(BaseModel):
    """A fault for the next `count` matching requests (deterministic, for tests)."""

    count: int = 1
    endpoint: Literal["any", "send", "token"] = "send"
    http_status: int | None = None
    retry_after_s: int | None = None
    drop: bool = False
    latency_ms: float = 0.0
    # Answer HTTP 200 with this SmartPush status code on every destination.
    status_code: int | None = None
    # Answer the token endpoint with this `{code, message}` error.
    token_error_code: int | None = None


@dataclass(slots=True)
class IssuedToken:
    client_id: str
    expires_at: float


@dataclass(slots=True)
class FaultDecision:
    latency_s: float = 0.0
    http_status: int | None = None
    retry_after_s: int | None = None
    drop: bool = False
    status_code: int | None = None
    token_error_code: int | None = None


class EmulatorState:
    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.faults = Faults()
        self.queued: collections.deque[QueuedFault] = collections.deque()
        self.tokens: dict[str, IssuedToken] = {}
        self.stats: collections.Counter[str] = collections.Counter()
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=config.record_limit)
        self._clock = clock
        self._overall: collections.deque[float] = collections.deque()
        self._per_user: dict[tuple[str, str], collections.deque[float]] = {}
        self._token_times: collections.deque[float] = collections.deque()
        self._rand = random.Random()

    def now(self) -> float:
        return self._clock()

    def reset(self) -> None:
        self.faults = Faults()
        self.queued.clear()
        self.tokens.clear()
        self.stats.clear()
        self.requests.clear()
        self._overall.clear()
        self._per_user.clear()
        self._token_times.clear()

    def issue_token(self, client_id: str) -> tuple[str, float]:
        value = "emu." + secrets.token_urlsafe(32)
        expires_at = self.now() + self.config.token_ttl_s
        self.tokens[value] = IssuedToken(client_id, expires_at)
        return value, expires_at

    def token_valid(self, value: str) -> bool:
        issued = self.tokens.get(value)
        return issued is not None and issued.expires_at > self.now()

    def expire_tokens(self) -> int:
        count = len(self.tokens)
        self.tokens.clear()
        return count

    def decide(self, endpoint: str) -> FaultDecision:
        for fault in self.queued:
            if fault.endpoint in ("any", endpoint):
                fault.count -= 1
                if fault.count <= 0:
                    self.queued.remove(fault)
                return FaultDecision(
                    fault.latency_ms / 1000.0,
                    fault.http_status,
                    fault.retry_after_s,
                    fault.drop,
                    fault.status_code,
                    fault.token_error_code,
                )
        f = self.faults
        if f.endpoint not in ("any", endpoint):
            return FaultDecision()
        decision = FaultDecision(latency_s=f.latency_ms / 1000.0, retry_after_s=f.retry_after_s)
        if f.drop_rate and self._rand.random() < f.drop_rate:
            decision.drop = True
        for status, rate in f.error_rates.items():
            if self._rand.random() < rate:
                decision.http_status = int(status)
                break
        return decision

    def take_quota(self, project: str, sub: str) -> int:
        """0 when the send fits every limit, else 1014 (overall) or 1018 (per user)."""
        now = self.now()
        cfg = self.config
        overall = _limits(cfg.overall_limit_per_minute, cfg.overall_limit_per_hour, cfg.overall_limit_per_day)
        per_user = _limits(cfg.per_user_limit_per_minute, cfg.per_user_limit_per_hour, cfg.per_user_limit_per_day)
        if overall and _exceeded(self._overall, overall, now):
            return 1014
        user: collections.deque[float] | None = None
        if per_user:  # windows only exist while a per-user limit is set
            user = self._per_user.setdefault((project, sub), collections.deque())
            if _exceeded(user, per_user, now):
                return 1018
        if overall:
            self._overall.append(now)
        if user is not None:
            user.append(now)
        return 0

    def take_token_slot(self) -> bool:
        """False when the token endpoint's per-second limit is reached."""
        limit = self.config.token_limit_per_second
        if not limit:
            return True
        now = self.now()
        while self._token_times and self._token_times[0] <= now - 1.0:
            self._token_times.popleft()
        if len(self._token_times) >= limit:
            return False
        self._token_times.append(now)
        return True


def _limits(minute: int, hour: int, day: int) -> list[tuple[float, int]]:
    return [(window, limit) for window, limit in ((60.0, minute), (3600.0, hour), (86400.0, day)) if limit]


def _exceeded(times: collections.deque[float], limits: list[tuple[float, int]], now: float) -> bool:
    _trim(times, now, max(window for window, _ in limits))
    for window, limit in limits:
        start = bisect.bisect_right(times, now - window)
        if len(times) - start >= limit:
            return True
    return False


def _trim(window: collections.deque[float], now: float, span: float) -> None:
    while window and window[0] <= now - span:
        window.popleft()
