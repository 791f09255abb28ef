"""The personal-data and secrets policy for telemetry, enforced in one place.

Spans and metrics only ever carry attributes from the allow-list below; anything else
is dropped here. The user's sub appears only as a salted hash; template values, client
secrets, Basic credentials and bearer tokens have no attribute to travel in. Logs use
the same idea (`gateway.logs.SAFE_EXTRAS`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

ALLOWED_ATTRIBUTES = frozenset(
    {
        # RPC semantic conventions
        "rpc.system",
        "rpc.service",
        "rpc.method",
        "rpc.grpc.status_code",
        # HTTP client semantic conventions
        "http.request.method",
        "http.response.status_code",
        "http.request.resend_count",
        "url.full",
        "server.address",
        "server.port",
        "error.type",
        # the gateway's own
        "smartpush.rq_uid",
        "smartpush.template_id",
        "smartpush.surfaces",
        "smartpush.delivery_mode",
        "smartpush.status_codes",
        "smartpush.profile",
        "smartpush.project_id",
        "smartpush.sub_hash",
        "smartpush.error_reason",
        "smartpush.token.source",
        "smartpush.endpoint",
        "smartpush.retry_reason",
        "smartpush.validate_only",
        "smartpush.replayed",
        "smartpush.validation.field",
        "smartpush.caller",
    }
)


def allowed(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """The attributes that may leave the process; everything else is dropped."""
    return {k: v for k, v in attributes.items() if k in ALLOWED_ATTRIBUTES and v is not None}


class SubHasher:
    """Salted HMAC-SHA256 of a sub: joins one user's spans without revealing who it is.
    With no configured salt, a random one per process (hashes do not link across restarts)."""

    def __init__(self, salt: str | None = None) -> None:
        # HMAC as RFC 2104 defines it, from the key's inner and outer SHA-256 states made once: each
        # call copies the two states (~1.2 us). hmac.digest, OpenSSL's one-shot HMAC, released the
        # GIL on every call — under load with telemetry on the span export thread took it each time
        # and the send waited ~30 us (bench/profile.py) — and OpenSSL's HMAC context copy is twice
        # this. A test compares the value with hmac's for short and long salts.
        key = (salt or secrets.token_hex(16)).encode()
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, sub: str) -> str:
        inner = self._inner.copy()
        inner.update(sub.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:24]


_SHA256_BLOCK = 64
_INDEX = re.compile(r'\[(\d+|"[^"]*")\]')


def field_label(path: str) -> str:
    """A field path as a metric label: indexes and map keys (which may be user data) removed."""
    return _INDEX.sub("[]", path)
