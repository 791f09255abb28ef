"""Client helpers for smartpush-gateway; the generated stubs live in `smartpush.gateway.v1`."""

from smartpush_gateway_client.channel import ChannelPool, TLSOptions, aio_channel, service_config, sync_channel
from smartpush_gateway_client.client import GatewayClient
from smartpush_gateway_client.errors import FieldViolation, GatewayCallError, decode

__all__ = [
    "ChannelPool",
    "FieldViolation",
    "GatewayCallError",
    "GatewayClient",
    "TLSOptions",
    "aio_channel",
    "decode",
    "service_config",
    "sync_channel",
]
