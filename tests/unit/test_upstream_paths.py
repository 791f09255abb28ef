"""`Upstream.post` answers alike on both transports — the aiohttp session used directly (the
default) and httpx's own — against real local HTTP servers: status, headers, a compressed body,
and the same httpx exceptions for a refused connection and a read that outlasts its timeout."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from gateway.config import SmartPushSettings
from gateway.smartpush.http import Upstream, make_transport
from tests.helpers import http_server

LIMITS = httpx.Timeout(2.0, connect=1.0)


@pytest.fixture(params=["aiohttp", "httpx"])
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[Upstream]:
    settings = SmartPushSettings(transport=request.param)
    transport = make_transport(settings)
    yield Upstream(transport)
    await transport.aclose()


async def test_status_headers_and_a_compressed_body_come_back_whole(upstream: Upstream) -> None:
    seen: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(request.headers)
        seen["body"] = (await request.read()).decode()
        body = gzip.compress(b'{"code": 1014}')
        return web.Response(status=429, body=body, headers={"Retry-After": "3", "Content-Encoding": "gzip"})

    async with http_server("POST", "/send", handler) as url:
        reply = await upstream.post(url, b'{"a": 1}', {"RqUID": "r-1", "Content-Type": "application/json"}, LIMITS)
    assert (reply.status_code, reply.content) == (429, b'{"code": 1014}')
    assert reply.headers.get("retry-after") == "3"  # any case
    assert (seen["RqUID"], seen["body"]) == ("r-1", '{"a": 1}')


async def test_a_refused_connection_is_an_httpx_transport_error(upstream: Upstream) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(httpx.ConnectError):
        await upstream.post(f"http://127.0.0.1:{port}/send", b"{}", {}, LIMITS)


async def test_a_read_past_its_timeout_is_an_httpx_timeout(upstream: Upstream) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.Response(text="late")

    async with http_server("POST", "/send", slow) as url:
        with pytest.raises(httpx.ReadTimeout):
            await upstream.post(url, b"{}", {}, httpx.Timeout(0.2))


async def test_a_connection_dropped_before_the_answer_is_a_protocol_error(upstream: Upstream) -> None:
    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.1)
        return web.Response(text="never sent")

    async with http_server("POST", "/send", drop) as url:
        with pytest.raises(httpx.RemoteProtocolError):
            await upstream.post(url, b"{}", {}, LIMITS)


def test_aiohttp_bounds_are_made_once_per_set_of_values_and_kept_bounded() -> None:
    upstream = Upstream(make_transport(SmartPushSettings(transport="aiohttp")))
    first = upstream._aiohttp_timeout(httpx.Timeout(2.0, connect=1.0))
    assert upstream._aiohttp_timeout(httpx.Timeout(2.0, connect=1.0)) is first
    assert (first.sock_connect, first.sock_read, first.connect) == (1.0, 2.0, 2.0)
    other = upstream._aiohttp_timeout(httpx.Timeout(0.5))
    assert (other.sock_connect, other.sock_read, other.connect) == (0.5, 0.5, 0.5)
    for i in range(200):
        upstream._aiohttp_timeout(httpx.Timeout(1.0 + i))
    assert len(upstream._aiohttp_timeouts) <= 64
