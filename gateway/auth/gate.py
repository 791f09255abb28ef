"""The edge's admission of an API call: not over the process's cap, an identified caller, and
one granted this RPC. Profile, project and template grants are checked where those are known."""

from __future__ import annotations

from typing import Any

from gateway.auth.callers import Caller, Callers
from gateway.auth.identity import Authenticator
from gateway.config import LoadSettings
from gateway.shedding import overloaded


class Gate:
    def __init__(self, authenticator: Authenticator, callers: Callers, load: LoadSettings) -> None:
        self._auth = authenticator
        self._callers = callers
        self._load = load
        self._max_in_flight = load.max_concurrent_rpcs  # read per call (a pydantic attribute is slower)

    async def admit(self, method: str, context: Any, in_flight: int) -> Caller:
        """`in_flight`: API calls in progress, this one included."""
        if in_flight > self._max_in_flight:
            raise overloaded("calls in progress", self._max_in_flight, self._load.retry_after_s)
        caller = self._callers.resolve(await self._auth.identify(context))
        caller.check_rpc(method)
        return caller
