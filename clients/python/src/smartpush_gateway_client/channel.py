"""Channels to the gateway: keepalive, a retry policy for UNAVAILABLE, TLS/mTLS, several subchannels."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import grpc

SERVICE = "smartpush.gateway.v1.PushService"


@dataclass(frozen=True)
class TLSOptions:
    """Server CA (None: system roots), and a client key and certificate for mTLS."""

    root_certificates: Path | None = None
    private_key: Path | None = None
    certificate_chain: Path | None = None
    server_name_override: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(p: Path | None) -> bytes | None:
            return p.read_bytes() if p is not None else None

        return grpc.ssl_channel_credentials(
            read(self.root_certificates), read(self.private_key), read(self.certificate_chain)
        )


def service_config(max_attempts: int = 3) -> str:
    """Round-robin over resolved addresses; retry UNAVAILABLE with backoff, where the gateway allows.

    One retry layer: the gateway retries SmartPush itself, and every answer it gives after that
    (or that may have reached SmartPush) carries `grpc-retry-pushback-ms: -1`, which tells this
    policy not to retry (gRFC A6). What is left to retry here reached nothing upstream: a replica
    that is shutting down (SHUTTING_DOWN) or a connection that failed. A retried Send is still
    safe twice over: `GatewayClient.send` adds an idempotency key when the caller did not.
    """
    config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": SERVICE}],
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
    return json.dumps(config)


def channel_options(
    keepalive_s: float = 60.0, retry_attempts: int = 3, own_subchannels: bool = False
) -> list[tuple[str, object]]:
    options: list[tuple[str, object]] = [
        ("grpc.keepalive_time_ms", int(keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.enable_retries", 1 if retry_attempts > 1 else 0),
        ("grpc.service_config", service_config(max(retry_attempts, 2))),
    ]
    if own_subchannels:
        # Each channel its own connection, so several channels spread over several gateway processes.
        options.append(("grpc.use_local_subchannel_pool", 1))
    return options


def aio_channel(
    target: str, *, tls: TLSOptions | None = None, keepalive_s: float = 60.0, retry_attempts: int = 3, own: bool = False
) -> grpc.aio.Channel:
    options = channel_options(keepalive_s, retry_attempts, own)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    if tls.server_name_override:
        options.append(("grpc.ssl_target_name_override", tls.server_name_override))
    return grpc.aio.secure_channel(target, tls.credentials(), options=options)


def sync_channel(
    target: str, *, tls: TLSOptions | None = None, keepalive_s: float = 60.0, retry_attempts: int = 3
) -> grpc.Channel:
    options = channel_options(keepalive_s, retry_attempts)
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    if tls.server_name_override:
        options.append(("grpc.ssl_target_name_override", tls.server_name_override))
    return grpc.secure_channel(target, tls.credentials(), options=options)


class ChannelPool:
    """Several aio channels with their own connections, used in turn."""

    def __init__(
        self,
        target: str,
        size: int = 1,
        *,
        tls: TLSOptions | None = None,
        keepalive_s: float = 60.0,
        retry_attempts: int = 3,
    ) -> None:
        self.channels = [
            aio_channel(target, tls=tls, keepalive_s=keepalive_s, retry_attempts=retry_attempts, own=size > 1)
            for _ in range(max(size, 1))
        ]
        self._next = itertools.cycle(self.channels)

    def next(self) -> grpc.aio.Channel:
        return next(self._next)

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close(None)
