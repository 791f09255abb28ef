"""A verified bearer token is remembered, but never past its `exp` nor past the key that verified it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from gateway.auth.jwks import KeySource
from gateway.auth.jwt_auth import JwtAuth
from gateway.config import JwtSettings
from gateway.errors import GatewayError
from tests.jwts import AUDIENCE, ISSUER, Signer


class Clock:
    """Wall time as it is (PyJWT reads it too); monotonic time moved by the test."""

    def __init__(self) -> None:
        self.mono = 0.0

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        self.mono += seconds


class Context:
    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def invocation_metadata(self) -> Any:
        return self._metadata


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def _auth(tmp_path: Path, signer: Signer, clock: Clock, leeway_s: float = 30.0) -> JwtAuth:
    settings = JwtSettings(jwks_file=signer.jwks, issuer=ISSUER, audience=AUDIENCE, leeway_s=leeway_s)
    keys = KeySource(clock, signer.jwks, None, 300.0, httpx.AsyncClient())
    return JwtAuth(settings, keys, clock)


async def test_a_token_is_verified_once_then_remembered(tmp_path: Path, verifications: list[str]) -> None:
    signer, clock = Signer(tmp_path), Clock()
    auth = _auth(tmp_path, signer, clock)
    token, other = signer.token("billing"), signer.token("crm")
    for _ in range(3):
        assert (await auth.identify(Context(token))).names == ("billing",)
    assert (await auth.identify(Context(other))).names == ("crm",)
    assert verifications == [token, other]


async def test_a_remembered_token_still_expires(tmp_path: Path, verifications: list[str]) -> None:
    signer, clock = Signer(tmp_path), Clock()
    auth = _auth(tmp_path, signer, clock, leeway_s=0.0)
    token = signer.token("billing", lifetime_s=2)  # exp in whole seconds: at least 1 s ahead
    assert (await auth.identify(Context(token))).names == ("billing",)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)  # real time: PyJWT reads the wall clock
    with pytest.raises(GatewayError, match="expired"):
        await auth.identify(Context(token))


async def test_a_key_rotated_out_takes_its_remembered_tokens_along(tmp_path: Path) -> None:
    signer, clock = Signer(tmp_path), Clock()
    auth = _auth(tmp_path, signer, clock)
    token = signer.token("billing")
    assert (await auth.identify(Context(token))).names == ("billing",)
    # The file now trusts only a new key (same kid, as a rotation in place would).
    (tmp_path / "next").mkdir()
    rotated = Signer(tmp_path / "next")
    signer.jwks.write_text(rotated.jwks.read_text())
    clock.mono += 2.0  # past the file's re-read interval
    with pytest.raises(GatewayError, match="signature"):
        await auth.identify(Context(token))


async def test_the_cache_is_bounded(tmp_path: Path) -> None:
    signer, clock = Signer(tmp_path), Clock()
    auth = _auth(tmp_path, signer, clock)
    auth.CACHE_SIZE = 5
    for i in range(20):
        await auth.identify(Context(signer.token(f"caller-{i}")))
    assert len(auth._verified) == 5
