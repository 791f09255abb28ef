"""Random bytes for RqUIDs and claim tokens, read from the OS a page at a time.

`os.urandom` is a system call that releases the GIL: with another Python thread busy (the span
exporter encoding a batch), every send that asked for 16 bytes waited for the GIL to come back —
up to the interpreter's switch interval (5 ms). Reading 4 KiB at once asks once per 256 RqUIDs;
the bytes are the same kernel randomness. A forked child starts with an empty buffer, so no two
processes hand out the same bytes.
"""

from __future__ import annotations

import os
import threading

_CHUNK = 4096


class _Pool:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._buffer = b""
        self._at = 0
        # Sends may run on more than one thread (tests, an embedding program); in a forked child a
        # lock held at fork time by another thread would never be released, hence a new one.
        self._lock = threading.Lock()

    def take(self, n: int) -> bytes:
        if n > _CHUNK:
            return os.urandom(n)
        with self._lock:
            at = self._at
            if at + n > len(self._buffer):
                self._buffer, at = os.urandom(_CHUNK), 0
            self._at = at + n
            return self._buffer[at : at + n]


_pool = _Pool()
os.register_at_fork(after_in_child=_pool._reset)


def random_bytes(n: int) -> bytes:
    """`os.urandom(n)`, without a system call (and a GIL release) per call."""
    return _pool.take(n)
