"""`messageId`s no two processes or replicas share (reference §3.2: unique within a session).

Ids come in blocks reserved from the store's counter, so a send costs a store round trip only
once per block. The counter starts at the current time in milliseconds (ids look like they did
before and keep growing after a store is wiped). When the store cannot answer, sends that need
nothing else from it go on with a random id from the upper half of the range, which the counter
never reaches: a clash is as likely as between two random 62-bit numbers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from gateway.clock import Clock
from gateway.state.store import StateStore, StoreUnavailable

log = logging.getLogger(__name__)
BLOCK = 1000
RANDOM_BASE = 1 << 62


class MessageIds:
    def __init__(self, store: StateStore, clock: Clock, block: int = BLOCK) -> None:
        self._store = store
        self._clock = clock
        self._block = block
        self._next = 0
        self._end = 0  # exclusive
        self._lock = asyncio.Lock()

    async def next(self) -> int:
        if self._next >= self._end:
            # Not `async with`: this module is compiled, and a compiled coroutine must not suspend
            # while an exception is handled (docs/performance.md); release() does not suspend.
            await self._lock.acquire()
            try:
                if self._next >= self._end:
                    try:
                        first = await self._store.reserve_ids(self._block, int(self._clock.time() * 1000))
                    except StoreUnavailable:
                        log.warning("state store unavailable: a random messageId for this send")
                        return RANDOM_BASE | secrets.randbits(62)
                    self._next, self._end = first, first + self._block
            finally:
                self._lock.release()
        value = self._next
        self._next += 1
        return value
