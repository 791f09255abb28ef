"""The one shared HTTP client per process, with the transport chosen by configuration."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.config import SmartPushSettings


def ssl_context(settings: SmartPushSettings) -> ssl.SSLContext | bool:
    if not settings.verify_tls:
        return False
    if settings.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(settings.ca_bundle))
    return ssl.create_default_context()


def make_transport(settings: SmartPushSettings) -> httpx.AsyncBaseTransport:
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
        keepalive_expiry=30.0,
    )
    verify = ssl_context(settings)
    if settings.transport == "aiohttp":
        return AiohttpTransport(verify=verify, limits=limits, trust_env=False)
    return httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)


def make_http_client(settings: SmartPushSettings, transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    timeout = httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s)
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the send path reads of an HTTP answer."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive lookups (httpx.Headers, aiohttp's CIMultiDict)
    content: bytes


class Upstream:
    """The hot path to SmartPush: a POST straight to the transport, the answer read whole.

    AsyncClient's per-request machinery (auth and redirect flows, cookie extraction, URL
    merging) measured about a third of the gateway's CPU per call, and the gateway needs none
    of it: no cookies, no redirects, its own auth header. Token requests, rare, keep the client.
    On the aiohttp transport (the default) the POST goes to its aiohttp session directly: the
    httpx Request/Response layer over it (building a Request, reading the body through stream
    iterators) measured ~10 % of the event loop's time per send (bench/profile.py). Its errors
    become the httpx exceptions httpx's own transport raises for the same failure (`_httpx_error`).
    """

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport
        self._aiohttp = transport if isinstance(transport, AiohttpTransport) else None
        self._urls: dict[str, httpx.URL] = {}
        self._aiohttp_timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str], limits: httpx.Timeout) -> Reply:
        if self._aiohttp is not None:
            return await self._post_aiohttp(self._aiohttp, url, body, headers, self._aiohttp_timeout(limits))
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = httpx.URL(url)
        extensions = {"timeout": limits.as_dict()}
        request = httpx.Request("POST", parsed, content=body, headers=headers, extensions=extensions)
        response = await self.transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return Reply(response.status_code, response.headers, response.content)

    def _aiohttp_timeout(self, limits: httpx.Timeout) -> aiohttp.ClientTimeout:
        """The same bounds httpx-aiohttp derives from an httpx.Timeout, made once per set of values
        (the send path passes one: a ClientTimeout is an attrs class, a few microseconds to make)."""
        key = (limits.connect, limits.read, limits.pool)
        found = self._aiohttp_timeouts.get(key)
        if found is None:
            if len(self._aiohttp_timeouts) >= 64:  # bounded, whatever callers pass
                self._aiohttp_timeouts.clear()
            found = self._aiohttp_timeouts[key] = aiohttp.ClientTimeout(
                sock_connect=limits.connect, sock_read=limits.read, connect=limits.pool
            )
        return found

    @staticmethod
    async def _post_aiohttp(
        transport: AiohttpTransport, url: str, body: bytes, headers: dict[str, str], bounds: aiohttp.ClientTimeout
    ) -> Reply:
        session = transport.client
        if not isinstance(session, aiohttp.ClientSession):
            session = transport.client = transport.get_client()  # shared with the transport, closed by it
        try:
            async with session.post(url, data=body, headers=headers, allow_redirects=False, timeout=bounds) as r:
                content = await r.read()
        except aiohttp.ClientError as exc:
            raise _httpx_error(exc) from exc
        return Reply(r.status, r.headers, content)


def _httpx_error(exc: aiohttp.ClientError) -> httpx.TransportError:
    """The httpx exception for an aiohttp failure. Most specific first: aiohttp's timeouts are also
    asyncio.TimeoutError, which the send path reads as the caller's deadline, so none may escape
    unmapped. (httpx-aiohttp's own table calls a refused connection a ConnectTimeout.)"""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.ReadError(message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)
    return httpx.NetworkError(message)
