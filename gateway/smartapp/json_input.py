"""JSON from callers (SmartApp messages, commands, actions), read within bounds.

orjson refuses what is not JSON (NaN, Infinity, lone surrogates, numbers beyond a double) and
nesting past 1024 levels; on top of that the text is bounded in size and the value in depth,
so a hostile message costs a bounded amount of work and never reaches recursive code deep.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.smartapp.codec import CodecError

MAX_CHARS = 256 * 1024
MAX_DEPTH = 32


def load_json(raw: str, path: str) -> Any:
    if len(raw) > MAX_CHARS:
        raise CodecError(path, f"at most {MAX_CHARS} characters of JSON, got {len(raw)}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CodecError(path, f"not JSON ({exc.msg})") from None
    if _depth_exceeds(data, MAX_DEPTH):
        raise CodecError(path, f"nested deeper than {MAX_DEPTH} levels")
    return data


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
