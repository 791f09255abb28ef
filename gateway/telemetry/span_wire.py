"""OTLP trace export encoded straight to protobuf wire bytes.

The SDK's encoder builds a protobuf message object per span, attribute and value, and it runs
on the export thread holding the GIL: it measured about 15 % of the gateway's CPU at full
sampling. This writes the same bytes (field-number order, proto3 presence rules as the SDK's
encoder applies them) with plain byte joins, and caches the encoding of attribute pairs, most
of which repeat on every call. A test checks it against the SDK's encoder, message for message.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from gateway.telemetry.fast_spans import FastSpan

_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_CACHE_LIMIT = 4096
# Encoded attribute pairs, per field number (a span's attributes are field 9; the resource's 1,
# the scope's and an event's 3, a link's 4: the same pair encodes with its field's tag), by
# (key, type, value): equal values of different types (True == 1 == 1.0) encode differently.
_CACHES: dict[int, dict[tuple[str, Any, Any], bytes]] = {tag: {} for tag in (1, 3, 4, 9)}
# What a lookup that found nothing answers: no encoded pair is empty, and bytes compare with bytes
# in C at once (None against bytes goes through both types' comparisons, per item).
_MISSING = b""
_NONE_FOUND = itertools.repeat(_MISSING)
# A span's name and kind fields, per (name, kind); the kind by identity (members are singletons;
# an Enum member's hash is a Python call).
_head_cache: dict[tuple[str, int], bytes] = {}
_UNSET_STATUS = b"\x7a\x00"  # field 15, an empty Status
_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
# Field 16 (flags, fixed32): has-is-remote, and is-remote when the parent is.
_LOCAL_FLAGS = b"\x85\x01" + _fixed32(_HAS_IS_REMOTE)
_REMOTE_FLAGS = b"\x85\x01" + _fixed32(_HAS_IS_REMOTE | _IS_REMOTE)
_double = struct.Struct("<d").pack


_ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))  # a varint below 128 is its one byte


def _varint(n: int) -> bytes:
    if 0 <= n < 0x80:
        return _ONE_BYTE[n]
    if n < 0:
        n &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_LD_TAGS = tuple(_varint(tag << 3 | 2) for tag in range(16))  # the key of a length-delimited field 0..15


def _ld(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    n = len(payload)
    return _LD_TAGS[tag] + (_ONE_BYTE[n] if n < 0x80 else _varint(n)) + payload


def _string(tag: int, value: str) -> bytes:
    return _ld(tag, value.encode()) if value else b""


def _uint(tag: int, value: int) -> bytes:
    return _varint(tag << 3) + _varint(value) if value else b""


def _any_value(value: Any) -> bytes:
    # bool before int: bool is an int subclass.
    if isinstance(value, str):
        return _ld(1, value.encode())
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, bytes):
        return _ld(7, value)
    if isinstance(value, Sequence):
        return _ld(5, b"".join(_ld(1, _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _ld(6, b"".join(_ld(1, _key_value(k, v)) for k, v in value.items()))
    raise TypeError(f"unsupported attribute value type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    return _string(1, key) + _ld(2, _any_value(value))


def _attributes(tag: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    cache = _CACHES[tag]
    values = attributes.values()
    # Keyed by (key, type, value), the tuples made in C: equal numbers of different types are
    # equal (True == 1 == 1.0) but encode differently. Looked up in one pass; most repeat on every
    # call, and the misses (request ids, the first sight of a value) are encoded below.
    try:
        parts = list(map(cache.get, zip(attributes, map(type, values), values, strict=True), _NONE_FOUND))
    except TypeError:  # an unhashable value: every pair encoded, none cached
        return b"".join(_ld(tag, _key_value(key, value)) for key, value in attributes.items())
    if _MISSING in parts:
        items = list(attributes.items())
        at = parts.index(_MISSING)
        while True:
            parts[at] = _missed(tag, cache, *items[at])
            if _MISSING not in parts:
                break
            at = parts.index(_MISSING, at + 1)
    return b"".join(parts)


def _missed(tag: int, cache: dict[tuple[str, Any, Any], bytes], key: str, value: Any) -> bytes:
    """A pair the one-pass lookup did not find, encoded and cached. A tuple's items have types of
    their own ((1, 0) == (True, False)): a tuple of anything but strings is cached under its items'
    types, where the one-pass lookup (under `tuple`) never finds it; it is looked up here."""
    kind: Any = type(value)
    if kind is tuple:
        types = tuple(map(type, value))
        if types.count(str) != len(types):
            kind = types
            found = cache.get((key, kind, value))
            if found is not None:
                return found
    encoded = _ld(tag, _key_value(key, value))
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()  # unique values (request ids) churn; the repeating ones come back at once
    cache[(key, kind, value)] = encoded
    return encoded


def _span(span: ReadableSpan) -> bytes:
    # The ReadableSpan fields read directly (the SDK 1.45 span and FastSpan keep the same ones),
    # and SpanContext's by tuple index (trace_id, span_id, is_remote, trace_flags, trace_state):
    # each property is a Python call, and this runs for every span exported.
    ctx = span._context
    assert ctx is not None
    parent = span._parent
    flags = _REMOTE_FLAGS if parent is not None and parent[2] else _LOCAL_FLAGS
    trace_state = ctx[4]
    start, end = span._start_time, span._end_time
    name, kind = span._name, span._kind
    head = _head_cache.get((name, id(kind)))
    if head is None:
        head = _head_cache[(name, id(kind))] = _string(5, name) + _uint(6, _KIND[kind])
        if len(_head_cache) > _CACHE_LIMIT:
            _head_cache.clear()
    if type(span) is FastSpan:  # its counts are plain fields; events and links empty tuples unless used
        dropped = span._dropped_attributes
        events, links = span._events, span._links
        dropped_events = 0 if type(events) is tuple else events.dropped  # type: ignore[attr-defined]
        dropped_links = 0 if type(links) is tuple else links.dropped  # type: ignore[attr-defined]
    else:
        dropped, events, links = span.dropped_attributes, span._events, span._links
        dropped_events, dropped_links = span.dropped_events, span.dropped_links
    parts = [
        b"\x0a\x10" + ctx[0].to_bytes(16, "big") + b"\x12\x08" + ctx[1].to_bytes(8, "big"),
        _string(3, trace_state.to_header()) if trace_state._dict else b"",
        b"\x22\x08" + parent[1].to_bytes(8, "big") if parent is not None else b"",
        head,
        b"\x39" + _fixed64(start) if start else b"",
        b"\x41" + _fixed64(end) if end else b"",
        _attributes(9, span._attributes),
        _uint(10, dropped) if dropped else b"",
    ]
    for event in events:
        body = (
            (b"\x09" + _fixed64(event.timestamp) if event.timestamp else b"")
            + _string(2, event.name)
            + _attributes(3, event.attributes)
            + _uint(4, event.dropped_attributes)
        )
        parts.append(_ld(11, body))
    if dropped_events:
        parts.append(_uint(12, dropped_events))
    for link in links:
        lctx = link.context
        lflags = _HAS_IS_REMOTE | (_IS_REMOTE if lctx.is_remote else 0)
        body = (
            b"\x0a\x10"
            + lctx.trace_id.to_bytes(16, "big")
            + b"\x12\x08"
            + lctx.span_id.to_bytes(8, "big")
            + _string(3, lctx.trace_state.to_header() if lctx.trace_state else "")
            + _attributes(4, link.attributes)
            + _uint(5, link.dropped_attributes)
            + b"\x35"
            + _fixed32(lflags)
        )
        parts.append(_ld(13, body))
    if dropped_links:
        parts.append(_uint(14, dropped_links))
    status = span._status
    code = status._status_code
    if code is StatusCode.UNSET and not status._description:
        parts.append(_UNSET_STATUS)
    else:
        parts.append(_ld(15, _string(2, status._description or "") + _uint(3, code.value)))
    parts.append(flags)
    return b"".join(parts)


def _header(tag: int, parts: list[bytes]) -> list[bytes]:
    """`parts` as one length-delimited field: its key and length before them, joined later (once)."""
    return [_LD_TAGS[tag], _varint(sum(map(len, parts))), *parts]


def encode_trace_request(spans: Sequence[ReadableSpan]) -> bytes:
    """ExportTraceServiceRequest bytes, grouped by resource then scope in first-seen order.

    Spans are grouped by the identity of their resource and scope objects (one of each per
    tracer: hashing a scope is a Python __hash__), looked up again only when they change from the
    span before; equal scopes from distinct objects are merged. Each level's fields are written
    as a list of parts behind their key and length, and the request joined once at the end (a
    batch is hundreds of KB: joining each level, as the nesting suggests, copied it five times)."""
    groups: dict[int, dict[int, list[bytes]]] = {}
    resources: dict[int, Any] = {}
    scopes_by_id: dict[int, Any] = {}
    resource = scope = current = None
    for span in spans:
        if span._resource is not resource or span._instrumentation_scope is not scope or current is None:
            resource, scope = span._resource, span._instrumentation_scope
            resources[id(resource)] = resource
            scopes_by_id[id(scope)] = scope
            current = groups.setdefault(id(resource), {}).setdefault(id(scope), [])
        span_bytes = _span(span)
        n = len(span_bytes)
        current.append(_LD_TAGS[2] + (_ONE_BYTE[n] if n < 0x80 else _varint(n)))
        current.append(span_bytes)
    out: list[bytes] = []
    for key, by_id in groups.items():
        held = resources[key]
        body = [_ld(1, _attributes(1, held.attributes))]
        scopes: dict[Any, list[bytes]] = {}
        for scope_id, encoded in by_id.items():
            scopes.setdefault(scopes_by_id[scope_id], []).extend(encoded)
        for one, encoded in scopes.items():
            scope_body = b""
            if one is not None:
                scope_body = _ld(
                    1, _string(1, one.name) + _string(2, one.version or "") + _attributes(3, one.attributes)
                )
            schema = one.schema_url if one is not None else ""
            body += _header(2, [scope_body, *encoded, _string(3, schema or "")])
        body.append(_string(3, held.schema_url))
        out += _header(1, body)
    return b"".join(out)
