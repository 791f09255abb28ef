"""Surface and channel names on the wire, derived once from the proto enums."""

from __future__ import annotations

from smartpush.gateway.v1 import delivery_pb2


def _wire_names(enum: object, prefix: str) -> dict[int, str]:
    descriptor = enum.DESCRIPTOR  # type: ignore[attr-defined]
    return {v.number: v.name.removeprefix(prefix) for v in descriptor.values if v.number != 0}


SURFACE_TO_WIRE: dict[int, str] = _wire_names(delivery_pb2.Surface, "SURFACE_")
WIRE_TO_SURFACE: dict[str, int] = {name: number for number, name in SURFACE_TO_WIRE.items()}
CHANNEL_TO_WIRE: dict[int, str] = _wire_names(delivery_pb2.Channel, "CHANNEL_")

# Reference §7.4 (salutejs DefaultChannels): the mobile app, SberBank Online, everything else is a device.
MOBILE_SURFACES = frozenset({delivery_pb2.SURFACE_COMPANION})
DEFAULT_CHANNEL: dict[int, int] = {
    number: (
        delivery_pb2.CHANNEL_COMPANION_B2C
        if number == delivery_pb2.SURFACE_COMPANION
        else delivery_pb2.CHANNEL_SBOL
        if number == delivery_pb2.SURFACE_SBOL
        else delivery_pb2.CHANNEL_B2C
    )
    for number in SURFACE_TO_WIRE
}
DEVICE_SURFACES = frozenset(n for n, ch in DEFAULT_CHANNEL.items() if ch == delivery_pb2.CHANNEL_B2C)


def channel_for(surface: int, override: int) -> str:
    return CHANNEL_TO_WIRE[override or DEFAULT_CHANNEL[surface]]
