"""Caller identity from a bearer JWT: signature by a JWKS key, `exp`, `iss`, `aud` and `sub`.

Its own module so PyJWT (and the cryptography it loads for RS/ES keys) is imported only when
`auth.mode` is `jwt`."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from gateway.auth.identity import Context, Identity, bearer, unauthenticated
from gateway.auth.jwks import KeySource
from gateway.clock import Clock
from gateway.config import JwtSettings


@dataclass(frozen=True, slots=True)
class _Verified:
    identity: Identity
    kid: str | None
    key: Any  # the PyJWK that verified it: trusted only while the key source still hands it out
    exp: float


class JwtAuth:
    """`authorization: Bearer <JWT>`: signature by a JWKS key, `exp`, `iss`, `aud` and `sub` required.

    A caller sends the same token on every call until it rotates it, so a verified token is
    remembered (bounded, least recently used out) until its `exp`: the signature check is most of
    an identification's cost. A remembered token is accepted only while the key that verified it
    is still the one the key source gives for its kid, so a key rotated out takes its tokens along.
    """

    CACHE_SIZE = 1024

    def __init__(self, settings: JwtSettings, keys: KeySource, clock: Clock) -> None:
        self._s = settings
        self._keys = keys
        self._clock = clock
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    async def identify(self, context: Context) -> Identity:
        token = bearer(context.invocation_metadata() or ())
        seen = self._verified.get(token)
        if seen is not None:
            # The same test jwt.decode applies to exp; a key rotated out invalidates the entry.
            if seen.exp > self._clock.time() - self._s.leeway_s and await self._keys.key(seen.kid) is seen.key:
                self._verified.move_to_end(token)
                return seen.identity
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthenticated("the bearer token is not a JWT") from None
        kid = header.get("kid")
        key = await self._keys.key(kid)
        if key is None:
            raise unauthenticated("the token's signing key is not among the trusted keys")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=self._s.algorithms,
                audience=self._s.audience,
                issuer=self._s.issuer,
                leeway=self._s.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthenticated("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise unauthenticated(f"the token is not for this audience ({self._s.audience})") from None
        except jwt.InvalidIssuerError:
            raise unauthenticated("the token's issuer is not trusted") from None
        except jwt.InvalidSignatureError:
            raise unauthenticated("the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise unauthenticated(f"the token is not valid ({type(exc).__name__})") from None
        identity = Identity((str(claims["sub"]),), "jwt")
        self._verified[token] = _Verified(identity, kid, key, float(claims["exp"]))
        if len(self._verified) > self.CACHE_SIZE:
            self._verified.popitem(last=False)
        return identity
