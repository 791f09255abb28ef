"""JSON from callers (SmartApp messages, commands, actions), read within bounds and exactly.

orjson is the gate: it refuses what is not JSON (NaN, Infinity, lone surrogates), numbers past a
double's range (no JavaScript reader, so no Canvas App, could hold them) and nesting past 1024
levels; on top of that the text is bounded in size and the value in depth, so a hostile message
costs a bounded amount of work and never reaches recursive code deep.

Then the accepted text is read again with simplejson and Decimal numbers, because orjson (like
any double-based reader) turns 12345678901234567890123 into 1.2345678901234568e+22 and 1.0 into a
float that cannot say it was written "1.0". Integers come back as Python ints (any size),
fractions as Decimals (their written digits), so `dump_json` writes the same values back.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import simplejson

from gateway.smartapp.codec_error import CodecError

MAX_CHARS = 256 * 1024
MAX_DEPTH = 32


def load_json(raw: str, path: str) -> Any:
    if len(raw) > MAX_CHARS:
        raise CodecError(path, f"at most {MAX_CHARS} characters of JSON, got {len(raw)}")
    try:
        gate = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CodecError(path, f"not JSON ({exc.msg})") from None
    if _depth_exceeds(gate, MAX_DEPTH):
        raise CodecError(path, f"nested deeper than {MAX_DEPTH} levels")
    return simplejson.loads(raw, use_decimal=True)


def dump_json(value: Any) -> str:
    """JSON text of a value read by `load_json` (or built from str/int/Decimal/float/bool/None)."""
    return simplejson.dumps(value, use_decimal=True, ensure_ascii=False, allow_nan=False)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
