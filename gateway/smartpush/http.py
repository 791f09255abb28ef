"""The one shared HTTP client per process, with the transport chosen by configuration."""

from __future__ import annotations

import ssl

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


class Upstream:
    """The hot path to SmartPush: httpx Requests sent straight to the transport.

    AsyncClient's per-request machinery (auth and redirect flows, cookie extraction, URL
    merging) measured about a third of the gateway's CPU per call, and the gateway needs none
    of it: no cookies, no redirects, its own auth header. Token requests, rare, keep the client.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport
        self._urls: dict[str, httpx.URL] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str], limits: httpx.Timeout) -> httpx.Response:
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
        return response
