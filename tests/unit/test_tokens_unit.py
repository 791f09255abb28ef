"""Token provider edge cases over httpx.MockTransport: units of expires_at and failing endpoints."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid

import grpc
import httpx
import pytest

from gateway.clock import SystemClock
from gateway.errors import GatewayError
from gateway.smartpush.tokens import Credentials, TokenProvider, parse_expires_at


def test_expires_at_units() -> None:
    assert parse_expires_at(1_800_000_000_000) == 1_800_000_000.0
    assert parse_expires_at(1_800_000_000) == 1_800_000_000.0
    # The unit is a switch (undocumented upstream): forced units read the same numbers differently.
    assert parse_expires_at(1_800_000_000, "ms") == 1_800_000.0
    assert parse_expires_at(1_800_000_000_000, "s") == 1_800_000_000_000.0
    with pytest.raises(ValueError, match="not a number"):
        parse_expires_at("soon")


def _provider(handler: httpx.MockTransport) -> TokenProvider:
    return TokenProvider(
        "p", Credentials("id@!1", "s3cret"), "https://auth.test/api/v2/oauth", httpx.AsyncClient(transport=handler),
        SystemClock(),
    )  # fmt: skip


async def test_request_shape_and_caching() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "tok", "expires_at": int((time.time() + 60) * 1000)})

    provider = _provider(httpx.MockTransport(handler))
    assert await asyncio.gather(*(provider.token() for _ in range(50))) == ["tok"] * 50
    assert len(seen) == 1
    req = seen[0]
    assert req.content == b"scope=SMART_PUSH"
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"id@!1:s3cret").decode()
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert uuid.UUID(req.headers["RqUID"]).version == 4
    assert "s3cret" not in repr(Credentials("id", "s3cret"))


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, text="boom"),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"access_token": "t"}),  # no expires_at
        httpx.Response(400, json={"code": 99, "message": "?"}),
    ],
)
async def test_unusable_answers_are_unavailable(answer: httpx.Response) -> None:
    provider = _provider(httpx.MockTransport(lambda _: answer))
    with pytest.raises(GatewayError) as caught:
        await provider.token()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert caught.value.reason_name == "ERROR_REASON_TOKEN_UNAVAILABLE"


async def test_transport_failure_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(GatewayError) as caught:
        await _provider(httpx.MockTransport(handler)).token()
    assert caught.value.reason_name == "ERROR_REASON_TOKEN_UNAVAILABLE"


async def test_invalidate_only_drops_the_rejected_token() -> None:
    tokens = iter(["t1", "t2"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": next(tokens), "expires_at": int(time.time() * 1000) + 60_000})

    provider = _provider(httpx.MockTransport(handler))
    assert await provider.token() == "t1"
    provider.invalidate("some-older-token")
    assert await provider.token() == "t1"
    provider.invalidate("t1")
    assert await provider.token() == "t2"


async def test_failing_early_refresh_keeps_serving_the_cached_token_without_hammering() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:  # a token that is already past its refresh point, but valid for 60 s
            return httpx.Response(200, json={"access_token": "old", "expires_at": int((time.time() + 60) * 1000)})
        return httpx.Response(503, text="down")

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    provider = TokenProvider("p", Credentials("id", "s"), "https://a.test/t", http, SystemClock(), refresh_ratio=0)
    assert await provider.token() == "old"
    for _ in range(20):
        assert await provider.token() == "old"
        await asyncio.sleep(0)
    assert calls == 2  # the first token, then one failed early refresh; no request per call
