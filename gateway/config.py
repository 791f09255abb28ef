"""Typed settings: `SMARTPUSH_GATEWAY_*` environment variables over an optional YAML file.

Nested keys use `__` in the environment, e.g.
`SMARTPUSH_GATEWAY_PROFILES__DEFAULT__CLIENT_ID` or `SMARTPUSH_GATEWAY_SMARTPUSH__BASE_URL`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

# Documented hosts (reference §0): the current ones are the default; the legacy
# `https://salute.online.sberbank.ru:9443` is one setting away.
DEFAULT_BASE_URL = "https://ngw.devices.sberbank.ru:9443"
TOKEN_PATH = "/api/v2/oauth"  # noqa: S105 - a URL path, not a secret
EXTENDED_PATH = "/api/v2/smartpush/apprequest"
LITE_PATH = "/api/v2/smartpush/apprequest-lite"


ENV_PREFIX = "SMARTPUSH_GATEWAY_"
# Read by the CLI, not a setting.
_NOT_SETTINGS = frozenset({f"{ENV_PREFIX}CONFIG"})


class ConfigError(Exception):
    """A setting that stops start-up: `setting` names it (a dotted path or a variable), never its value."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class _Strict(BaseModel):
    # A misspelt key at any depth is an error, never silently ignored (it once sent to production).
    model_config = ConfigDict(extra="forbid")


class ProfileSettings(_Strict):
    """One set of SmartPush credentials. The secret comes from `secret` (env) or `secret_file`."""

    client_id: str
    secret: SecretStr | None = None
    secret_file: Path | None = None
    scope: str = "SMART_PUSH"
    # Per-profile upstream override (e.g. a test environment); empty means the global one.
    base_url: str | None = None
    token_url: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> ProfileSettings:
        if self.secret is None and self.secret_file is None:
            raise ValueError("a profile needs `secret` or `secret_file`")
        if self.secret is not None and self.secret_file is not None:
            raise ValueError("set `secret` or `secret_file`, not both")
        if self.secret_file is not None and not (self.secret_file.is_file() and os.access(self.secret_file, os.R_OK)):
            raise ValueError(f"secret_file {str(self.secret_file)!r} does not exist or cannot be read")
        return self

    def resolve_secret(self) -> str:
        if self.secret is not None:
            return self.secret.get_secret_value()
        assert self.secret_file is not None
        return self.secret_file.read_text().strip()


class WireSettings(_Strict):
    """Where the sources disagree on the wire format (reference §13), choose here."""

    # Extended body wrapped as {"requestPayload": {...}} (S3, salutejs) or sent bare (smart_app_framework).
    wrap_request_payload: bool = True
    # `BROADCAST` (salutejs, S5) or `broadcast` (smart_app_framework).
    delivery_mode_case: Literal["upper", "lower"] = "upper"
    # Device deeplink key: `deeplink` (S5 doc) or `deepLink` (salutejs type).
    device_deeplink_key: Literal["deeplink", "deepLink"] = "deeplink"
    # `deviceSerialFilter` as an array of objects (sample) or one object (salutejs type).
    device_serial_filter: Literal["array", "object"] = "array"
    protocol_version: str = "V1"
    # What 1016 means (reference §5.3): `salutejs` — 1016 the template does not exist for the project,
    # 1017 its variables do not match; `s4` (the template doc) — 1016 the variables do not match.
    template_error_codes: Literal["salutejs", "s4"] = "salutejs"


class SmartPushSettings(_Strict):
    base_url: str = DEFAULT_BASE_URL
    token_url: str | None = None
    extended_path: str = EXTENDED_PATH
    lite_path: str = LITE_PATH
    # `extended` (apprequest, every feature) or `lite` (apprequest-lite: one surface, no time frame).
    endpoint: Literal["extended", "lite"] = "extended"
    wire: WireSettings = Field(default_factory=WireSettings)
    # TLS: SmartPush's chain ends at the Russian Trusted Root CA; point this at a bundle that has it.
    ca_bundle: Path | None = None
    verify_tls: bool = True
    # `aiohttp` keeps the httpx API over aiohttp's connection pool (measured faster); `httpx` is stock.
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    max_connections: int = 256
    connect_timeout_s: float = 3.0
    request_timeout_s: float = 10.0
    # Retries: transport errors, 429 and 5xx only; full jitter; never past the caller's deadline.
    max_attempts: int = 4
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0
    # An attempt is not started with less time than this left before the deadline.
    min_attempt_s: float = 0.01
    # Refresh a token after this fraction of its lifetime, in the background.
    token_refresh_ratio: float = 0.8
    token_timeout_s: float = 5.0
    # Unit of the token answer's `expires_at` (undocumented; reference §14 q3): `auto` takes values
    # past 10^10 as milliseconds (what Sber's clients assume) and smaller ones as seconds.
    token_expires_at_unit: Literal["auto", "ms", "s"] = "auto"  # noqa: S105 - a unit, not a secret

    def resolved_token_url(self, profile: ProfileSettings | None = None) -> str:
        if profile is not None and profile.token_url:
            return profile.token_url
        if profile is not None and profile.base_url:
            return profile.base_url.rstrip("/") + TOKEN_PATH
        return self.token_url or self.base_url.rstrip("/") + TOKEN_PATH

    def send_url(self, profile: ProfileSettings | None = None) -> str:
        base = (profile.base_url if profile is not None and profile.base_url else self.base_url).rstrip("/")
        return base + (self.lite_path if self.endpoint == "lite" else self.extended_path)


class TemplateSettings(_Strict):
    """An approved template (Studio -> Дополнения -> Push-уведомления), for checks before sending."""

    id: str
    name: str = ""
    # The one surface the template was made for, e.g. COMPANION; empty means any.
    surface: str = ""
    header: str
    body: str
    # Wire names of the deeplink parameters the template defines, e.g. [buttonText, deeplinkAndroid].
    deeplink_parameters: list[str] = Field(default_factory=list)


class TelemetrySettings(_Strict):
    """Exporters come from the standard OTEL_* variables; these are the gateway's own knobs."""

    # Print spans and metrics on stdout (local use).
    console: bool = False
    # Serve a Prometheus scrape endpoint, e.g. "0.0.0.0:9464", for teams that scrape.
    prometheus_listen: str | None = None
    # Salt for the hash of a sub in spans; unset means a random salt per process.
    sub_hash_salt: SecretStr | None = None


class StateSettings(_Strict):
    """Where the gateway keeps what it remembers (idempotency records, consent, messageId blocks)."""

    # `sqlite`: one file shared by the workers of one host (the embedded default, one replica).
    # `redis`: shared by every replica.
    backend: Literal["sqlite", "redis"] = "sqlite"
    sqlite_path: Path = Path(".smartpush-gateway/state.sqlite3")
    # redis://host:6379/0 or rediss:// for TLS; may carry a password (it is a secret: from a Secret).
    redis_url: SecretStr | None = None
    # A password kept apart from the URL: as a value, or (better, from a mounted Secret) a file.
    redis_password: SecretStr | None = None
    redis_password_file: Path | None = None
    # CA bundle for rediss:// when the server's chain is not in the system store.
    redis_ca_file: Path | None = None
    # Prefix of every key, so several gateways (or environments) can share one Redis.
    key_prefix: str = "smartpush-gateway:"
    # Connect and command timeout: a stalled store costs a call this long, then UNAVAILABLE.
    timeout_s: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _redis_needs_url(self) -> StateSettings:
        if self.backend == "redis" and self.redis_url is None:
            raise ValueError("backend `redis` needs `redis_url` (state.redis_url)")
        if self.redis_ca_file is not None and not self.redis_ca_file.is_file():
            raise ValueError(f"redis_ca_file {str(self.redis_ca_file)!r} does not exist")
        if self.redis_password is not None and self.redis_password_file is not None:
            raise ValueError("set redis_password or redis_password_file, not both")
        pw_file = self.redis_password_file
        if pw_file is not None and not (pw_file.is_file() and os.access(pw_file, os.R_OK)):
            raise ValueError(f"redis_password_file {str(pw_file)!r} does not exist or cannot be read")
        return self

    def resolve_redis_password(self) -> str | None:
        if self.redis_password is not None:
            return self.redis_password.get_secret_value()
        if self.redis_password_file is not None:
            return self.redis_password_file.read_text().strip()
        return None


class JwtSettings(_Strict):
    """Bearer tokens in the `authorization` metadata, e.g. Kubernetes projected service-account tokens."""

    # A JWKS document on disk (re-read when it changes), and/or a URL fetched and cached.
    jwks_file: Path | None = None
    jwks_url: str | None = None
    jwks_refresh_s: float = Field(default=300.0, gt=0)
    issuer: str
    audience: str
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    # Clock skew allowed on exp/nbf/iat.
    leeway_s: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _some_keys(self) -> JwtSettings:
        if self.jwks_file is None and self.jwks_url is None:
            raise ValueError("set jwks_file or jwks_url (or both)")
        if self.jwks_file is not None and not self.jwks_file.is_file():
            raise ValueError(f"jwks_file {str(self.jwks_file)!r} does not exist")
        return self


class AuthSettings(_Strict):
    """How callers are identified. `none` is for local use only: anyone reaching the port may send."""

    mode: Literal["none", "mtls", "jwt"] | None = None
    jwt: JwtSettings | None = None

    @model_validator(mode="after")
    def _explicit(self) -> AuthSettings:
        if self.mode is None:
            raise ValueError(
                "required: `mtls` or `jwt` to identify callers, or `none` (local use only: anyone who "
                "reaches the port may send under any profile)"
            )
        if self.mode == "jwt" and self.jwt is None:
            raise ValueError("mode `jwt` needs the `jwt` section (jwks_file or jwks_url, issuer, audience)")
        return self


class RateSettings(_Strict):
    per_second: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)


class CallerSettings(_Strict):
    """One calling service and what it may do. Lists take exact values or `*`; empty grants nothing."""

    # The JWT `sub`, or the client certificate's URI SAN (e.g. a SPIFFE id), DNS SAN or CN.
    match: str
    # Full method names or globs, e.g. `smartpush.gateway.v1.TemplateService/*`; `*`: every RPC.
    rpcs: list[str] = Field(default_factory=lambda: ["*"])
    profiles: list[str] = Field(default_factory=list)
    projects: list[str] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)
    # Sends per second and burst for this caller, counted across every replica; none: unlimited.
    rate: RateSettings | None = None


class WindowLimits(_Strict):
    """Sends per minute, hour and day, overall and to any one user (0: no limit). Mirror what was
    agreed with SmartPush's moderators (reference §8), so the gateway refuses before SmartPush does."""

    per_minute: int = Field(default=0, ge=0)
    per_hour: int = Field(default=0, ge=0)
    per_day: int = Field(default=0, ge=0)
    per_user_per_minute: int = Field(default=0, ge=0)
    per_user_per_hour: int = Field(default=0, ge=0)
    per_user_per_day: int = Field(default=0, ge=0)


class QuotaSettings(_Strict):
    """Budgets counted in the state store, so every replica sees one budget."""

    # Per credential profile: SmartPush's limits belong to the smartapp whose credentials send.
    profiles: dict[str, WindowLimits] = Field(default_factory=dict)
    # Per project id; `*` applies to each project separately.
    projects: dict[str, WindowLimits] = Field(default_factory=dict)
    # Leases (gateway/quota_leases.py): a process charges up to this share of a budget at once
    # (at most 64 sends) and spends it without a store round trip, for at most lease_s and never
    # past its window's end. Budgets too small for a lease of 2 are charged send by send, and so
    # is every send once a budget is nearly spent. 0: every send charged in the store.
    lease_share: float = Field(default=0.01, ge=0, lt=1)
    lease_s: float = Field(default=1.0, gt=0, le=60)


class LoadSettings(_Strict):
    """Load shedding, per process: beyond these, calls are refused at once (UNAVAILABLE / OVERLOADED
    with RetryInfo) rather than left to queue into their deadlines."""

    # Sends waiting on SmartPush at once (sygnal's ConcurrencyLimitedPushkin).
    max_upstream_in_flight: int = Field(default=256, ge=1)
    # API calls in progress at once.
    max_concurrent_rpcs: int = Field(default=2048, ge=1)
    # The retry delay refusals advise.
    retry_after_s: float = Field(default=1.0, gt=0)


class CallbackSettings(_Strict):
    """The delivery-status receiver: SmartPush posts statuses to each send's `callbackUrl`
    (reference §6), which the gateway then points at itself with an unguessable per-send token."""

    enabled: bool = False
    # Where the receiver listens (its own port, plain HTTP: put TLS at your ingress).
    listen: str = "0.0.0.0:8091"
    # The URL SmartPush can reach the receiver at, e.g. https://push-gw.example.com/callbacks.
    public_url: str | None = None
    # How long statuses (and the tokens that accept them) are kept.
    ttl_s: float = Field(default=3 * 86400.0, gt=0)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    @model_validator(mode="after")
    def _reachable(self) -> CallbackSettings:
        if self.enabled and not (self.public_url or "").startswith(("http://", "https://")):
            raise ValueError("callbacks.enabled needs public_url: the http(s) URL SmartPush can reach the receiver at")
        return self


# Settings that moved: a config that still has them stops start-up with where they went.
_MOVED = {
    "consent_db": "consent now lives in the state store: set state.sqlite_path (or state.backend: redis)",
    "idempotency_max_entries": "idempotency records live in the state store and expire after idempotency_ttl_s",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    listen: str = "127.0.0.1:50051"
    # Processes sharing the port (SO_REUSEPORT); clients need several channels to spread over them.
    workers: int = Field(default=1, ge=1, le=64)
    # Set by the supervisor for each worker; 0 when there is one process.
    worker_index: int = Field(default=0, ge=0)
    # Serve TLS when both are set; add a client CA bundle to require client certificates (mTLS).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    profiles: dict[str, ProfileSettings] = Field(default_factory=dict)
    default_profile: str = "default"
    # Callers may send their own client id and secret (the seed's `authConfig`); off by default.
    allow_inline_credentials: bool = False
    # SIGTERM: NOT_SERVING at once, then this long for in-flight calls to finish. At least one
    # full upstream attempt (token + connect + request timeouts), so an accepted call can finish.
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    # How often readiness re-checks that a token for the default profile is held or obtainable.
    readiness_interval_s: float = Field(default=10.0, gt=0)
    # Readiness asks for the default profile's token (and so warms the cache); off: ready once configured.
    readiness_checks_token: bool = True
    log_level: str = "INFO"
    # `auto`: text on a terminal, JSON otherwise.
    log_format: Literal["json", "text", "auto"] = "auto"
    idempotency_ttl_s: float = Field(default=24 * 3600.0, gt=0)
    smartpush: SmartPushSettings = Field(default_factory=SmartPushSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    # Templates the gateway checks sends against before the upstream call.
    templates: list[TemplateSettings] = Field(default_factory=list)
    # Strict: a send with a template id not listed above is refused (NOT_FOUND).
    strict_templates: bool = False
    # Refuse sends to users without recorded push consent (FAILED_PRECONDITION).
    require_consent: bool = False
    # Idempotency records, consent and messageId blocks: SQLite on a volume, or Redis for replicas.
    state: StateSettings = Field(default_factory=StateSettings)
    # Who may call (required: say `none` explicitly for local use), what each caller may do, and budgets.
    auth: AuthSettings = Field(default_factory=dict, validate_default=True)
    callers: dict[str, CallerSettings] = Field(default_factory=dict)
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    load: LoadSettings = Field(default_factory=LoadSettings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, where in _MOVED.items():
                if old in data:
                    raise ValueError(f"`{old}` is no longer a setting; {where}")
        return data

    @model_validator(mode="after")
    def _callers_need_identity(self) -> Settings:
        if self.auth.mode == "none" and self.callers:
            raise ValueError("`callers` are named by their identity: set auth.mode to mtls or jwt")
        if self.auth.mode in ("mtls", "jwt") and not self.callers:
            raise ValueError(f"auth.mode {self.auth.mode} denies every caller not in `callers`: configure them")
        if self.auth.mode == "mtls" and self.tls_client_ca_file is None:
            raise ValueError("auth.mode mtls needs client certificates: set tls_client_ca_file (and TLS)")
        return self

    @model_validator(mode="after")
    def _grace_covers_one_attempt(self) -> Settings:
        sp = self.smartpush
        attempt = sp.token_timeout_s + sp.connect_timeout_s + sp.request_timeout_s
        if self.shutdown_grace_s < attempt:
            raise ValueError(
                f"shutdown_grace_s ({self.shutdown_grace_s:g}) is shorter than one upstream attempt "
                f"({attempt:g} s: smartpush.token_timeout_s + connect_timeout_s + request_timeout_s); "
                "calls accepted before SIGTERM could be cut off after SmartPush delivered them"
            )
        return self


def load_settings(
    config_file: Path | str | None = None, environ: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Settings from (highest first) keyword overrides, environment, YAML file, defaults.

    Raises ConfigError naming the first bad setting (never its value): a named file that does not
    exist, a `SMARTPUSH_GATEWAY_*` variable that is no setting, an unknown key at any depth, a
    value of the wrong type, an unreadable secret file.
    """
    env = os.environ if environ is None else environ
    path = config_file or env.get(f"{ENV_PREFIX}CONFIG")
    if path and not Path(path).is_file():
        raise ConfigError("--config" if config_file else f"{ENV_PREFIX}CONFIG", f"no such file: {path}")
    for name in env:
        moved = _MOVED.get(name[len(ENV_PREFIX) :].lower()) if name.startswith(ENV_PREFIX) else None
        if moved:
            raise ConfigError(name, f"no longer a setting; {moved}")
        if name.startswith(ENV_PREFIX) and name not in _NOT_SETTINGS and not _is_setting(name):
            raise ConfigError(name, "not a setting (misspelt?); see the README's configuration reference")

    class _FromSources(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=Path(path)))
            return tuple(sources)

    try:
        return _FromSources(**overrides)
    except ValidationError as exc:
        raise config_error(exc) from None
    except (OSError, ValueError) as exc:  # YAML that cannot be read or parsed
        raise ConfigError(str(path), f"cannot be read as YAML ({type(exc).__name__})") from None


def config_error(exc: ValidationError) -> ConfigError:
    """The first problem of a validation error, without the input (it may be a secret)."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    first = errors[0]
    setting = ".".join(str(p) for p in first["loc"]) or "(settings)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ConfigError(setting, f"{first['msg']}{more}")


def _is_setting(variable: str) -> bool:
    """Whether `SMARTPUSH_GATEWAY_A__B__C` names a field (map keys, such as profile names, are free)."""
    model: Any = Settings
    parts = variable[len(ENV_PREFIX) :].lower().split("__")
    i = 0
    while i < len(parts):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return False
        field = model.model_fields.get(parts[i])
        if field is None:
            return False
        kind = field.annotation
        i += 1
        if get_origin(kind) is dict:
            i += 1  # the map key
            kind = get_args(kind)[1]
        if i >= len(parts):
            return True
        model = _model_in(kind)
    return True


def _model_in(kind: Any) -> Any:
    """The BaseModel inside an annotation such as `X` or `X | None`, else the annotation itself."""
    if isinstance(kind, type):
        return kind
    return next((a for a in get_args(kind) if isinstance(a, type) and issubclass(a, BaseModel)), kind)
