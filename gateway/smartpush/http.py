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


def make_http_client(settings: SmartPushSettings) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
        keepalive_expiry=30.0,
    )
    timeout = httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s)
    verify = ssl_context(settings)
    transport: httpx.AsyncBaseTransport
    if settings.transport == "aiohttp":
        transport = AiohttpTransport(verify=verify, limits=limits, trust_env=False)
    else:
        transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False)
