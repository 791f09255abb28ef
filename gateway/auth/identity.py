"""Who is calling: the names a call's credentials prove, from its client certificate (mTLS) or a
bearer JWT. A failure is UNAUTHENTICATED with a reason and a short why, never the token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from smartpush.gateway.v1 import errors_pb2

from gateway.errors import GatewayError

Context = Any  # grpc.aio.ServicerContext


@dataclass(frozen=True, slots=True)
class Identity:
    """The names the credentials prove, most specific first (a SPIFFE id before a DNS name before
    a CN), and how they were proven."""

    names: tuple[str, ...]
    via: str


ANONYMOUS = Identity(("anonymous",), "none")


def unauthenticated(why: str) -> GatewayError:
    return GatewayError(errors_pb2.ERROR_REASON_CALLER_UNAUTHENTICATED, f"caller not authenticated: {why}")


class Authenticator(Protocol):
    async def identify(self, context: Context) -> Identity: ...


class NoAuth:
    """`auth.mode: none` (local use): every caller is `anonymous`."""

    async def identify(self, context: Context) -> Identity:
        return ANONYMOUS


class MtlsAuth:
    """The client certificate the TLS handshake verified against `tls_client_ca_file`."""

    async def identify(self, context: Context) -> Identity:
        auth = context.auth_context() or {}
        names: list[str] = []
        for key in ("peer_uri", "peer_dns", "x509_common_name"):
            names += [v.decode(errors="replace") for v in auth.get(key, ())]
        if not names:
            raise unauthenticated("no client certificate")
        return Identity(tuple(names), "mtls")


def bearer(metadata: Any) -> str:
    for key, value in metadata:
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise unauthenticated("`authorization` metadata must be `Bearer <token>`")
    raise unauthenticated("no `authorization: Bearer <token>` metadata")
