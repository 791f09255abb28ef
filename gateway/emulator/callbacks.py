"""The emulator calls back: for each accepted send with a `callbackUrl`, after a delay it POSTs
delivery statuses there, as SmartPush is documented to (reference §6; the body is not documented,
so this follows the inferred shape: a `PUSH_SENDING_RESULT` message whose `payload.result` is
shaped like the send answer's — `surface`, `status{code, description}`, `deviceStatuses[]` — plus
a `timestamp` in epoch milliseconds, an assumption of this emulator).

Two statuses per delivered destination: `sent` (no devices), then `delivered` (with the device).
Faults: each posted twice, the later one first, never, or a receiver that fails (retried twice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel

log = logging.getLogger(__name__)


class CallbackConfig(BaseModel):
    enabled: bool = True
    delay_ms: float = 50.0
    # Faults: `duplicate` posts each status twice; `out_of_order` posts `delivered` before `sent`;
    # `never` posts nothing.
    fault: Literal["none", "duplicate", "out_of_order", "never"] = "none"
    # Attempts per status when the receiver answers 5xx or cannot be reached.
    attempts: int = 3


def statuses(delivered: list[dict[str, Any]], sent_at_ms: int) -> list[dict[str, Any]]:
    """The callbacks for one send, in the order SmartPush would make them."""
    first = [
        {"surface": d["surface"], "status": {"code": 0, "description": "sent"}, "deviceStatuses": []} for d in delivered
    ]
    return [
        {"messageName": "PUSH_SENDING_RESULT", "payload": {"result": first, "timestamp": sent_at_ms + 10}},
        {"messageName": "PUSH_SENDING_RESULT", "payload": {"result": delivered, "timestamp": sent_at_ms + 20}},
    ]


class Caller:
    """Posts callbacks in the background; `stop` waits for those in flight."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.posted = 0
        self.failed = 0

    def schedule(self, url: str, delivered: list[dict[str, Any]], config: CallbackConfig) -> None:
        if not config.enabled or config.fault == "never" or not delivered:
            return
        bodies = statuses(delivered, int(time.time() * 1000))
        if config.fault == "out_of_order":
            bodies.reverse()
        if config.fault == "duplicate":
            bodies = [b for body in bodies for b in (body, body)]
        task = asyncio.create_task(self._post_all(url, bodies, config))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_all(self, url: str, bodies: list[dict[str, Any]], config: CallbackConfig) -> None:
        await asyncio.sleep(config.delay_ms / 1000)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        for body in bodies:
            for attempt in range(config.attempts):
                try:
                    async with self._session.post(url, json=body) as answer:
                        if answer.status < 500:
                            self.posted += 1
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05 * (attempt + 1))
            else:
                self.failed += 1

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._session is not None:
            await self._session.close()
