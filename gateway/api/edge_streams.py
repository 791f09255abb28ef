"""The edge's relay for bidirectional streams, in a module of its own.

Async generators are the one construct here mypyc cannot compile (docs/performance.md), so the
two the edge needs for stream-stream methods live apart from the edge, which is compiled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Context = grpc.aio.ServicerContext[Any, Any]


def checked_stream(
    behavior: Callable[[AsyncIterator[Any], Context], AsyncIterator[Any]],
    check: Callable[[Any, Context], Awaitable[None]],
) -> Callable[[AsyncIterator[Any], Context], AsyncIterator[Any]]:
    """A stream-stream handler: `behavior`'s responses, each request passed through `check` (which
    aborts the call) first. grpc.aio serves it as a stream only if it is an async generator function."""

    async def handler(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        async def checked() -> AsyncIterator[Any]:
            async for request in requests:
                await check(request, context)
                yield request

        async for response in behavior(checked(), context):
            yield response

    return handler
