"""What the typed protos do not model, kept exactly: unknown keys and free-form JSON.

Readers are tolerant: keys a message carries beside the modelled ones go to an `extra_json` text,
free-form values to a `*_json` text (exact) and a Struct view (doubles). Writers are strict: the
extra keys must not restate what the typed fields write, and a `*_json` text and its Struct view,
when both are set, must agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from google.protobuf import json_format, struct_pb2

from gateway.smartapp.codec_error import CodecError
from gateway.smartapp.json_input import dump_json, load_json

Json = dict[str, Any]


def extra_of(data: Json, modelled: Iterable[str]) -> str:
    """The keys of `data` outside `modelled`, as a JSON object text ("" when there are none)."""
    known = set(modelled)
    extra = {k: v for k, v in data.items() if k not in known}
    return dump_json(extra) if extra else ""


def merge_extra(out: Json, extra_json: str, path: str) -> Json:
    """Write the extra keys back beside what the typed fields wrote; a key both say is refused."""
    if not extra_json:
        return out
    extra = load_json(extra_json, path)
    if not isinstance(extra, dict):
        raise CodecError(path, "must be a JSON object")
    clash = sorted(set(extra) & set(out))
    if clash:
        raise CodecError(path, f"key {clash[0][:40]!r} is a modelled field; set the field instead")
    out.update(extra)
    return out


def _as_doubles(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)):
        return float(value)  # OverflowError past a double: no Struct view
    if isinstance(value, dict):
        return {k: _as_doubles(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_doubles(v) for v in value]
    return value


def struct_view(value: Any) -> struct_pb2.Struct | None:
    """The Struct view of a JSON object, or None when it is not an object or has no double form."""
    if not isinstance(value, dict):
        return None
    out = struct_pb2.Struct()
    try:
        json_format.ParseDict(_as_doubles(value), out)
    except (json_format.ParseError, ValueError, OverflowError):
        return None
    return out


def _plain(value: Any) -> Any:
    # Struct keeps every number as a double; give integral ones back as ints.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def unstruct(value: struct_pb2.Struct, path: str) -> Json:
    try:
        raw = json_format.MessageToDict(value)
    except ValueError:  # NaN or Infinity in a number_value: not JSON
        raise CodecError(path, "numbers must be finite (NaN and Infinity are not JSON)") from None
    plain = _plain(raw)
    assert isinstance(plain, dict)
    return plain


def fill(value: Any, struct: struct_pb2.Struct, set_json: Any) -> None:
    """Decode side: the exact text always, the Struct view when the value has one."""
    set_json(dump_json(value))
    view = struct_view(value)
    if view is not None:
        struct.CopyFrom(view)


class _Missing:
    pass


MISSING: Any = _Missing()


def exact_or_struct(exact: str, struct: struct_pb2.Struct | None, json_path: str, struct_path: str) -> Any:
    """Encode side: the `*_json` text when set (checked against a Struct set beside it), else the
    Struct, else MISSING."""
    if exact:
        value = load_json(exact, json_path)
        if struct is not None and struct_view(value) != struct:
            raise CodecError(json_path, f"says something else than {struct_path}; set only one of them")
        return value
    if struct is not None:
        return unstruct(struct, struct_path)
    return MISSING
