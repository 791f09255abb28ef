"""What each caller may do: configured grants, deny by default. A call outside them is
PERMISSION_DENIED naming what was refused (rpc, profile, project or template)."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

from smartpush.gateway.v1 import errors_pb2

from gateway.auth.identity import Identity
from gateway.config import CallerSettings, Settings
from gateway.errors import GatewayError


def not_allowed(caller: str, refused: str, value: str, why: str) -> GatewayError:
    return GatewayError(
        errors_pb2.ERROR_REASON_CALLER_NOT_ALLOWED,
        f"caller {caller[:64]!r} {why}",
        metadata={"caller": caller, "refused": refused, "value": value[:128]},
    )


@lru_cache(maxsize=1024)
def _rpc_granted(patterns: tuple[str, ...], method: str) -> bool:
    # Patterns come from configuration and methods from the service table: few pairs, each
    # decided once (glob matching per call was a measurable share of the edge).
    return any(fnmatchcase(method, g) for g in patterns)


def _granted(grants: list[str], value: str) -> bool:
    return "*" in grants or value in grants


@dataclass(frozen=True, slots=True)
class Caller:
    """A caller known by name; `grants` None means unrestricted (auth.mode none)."""

    name: str
    grants: CallerSettings | None = None

    def check_rpc(self, method: str) -> None:
        if self.grants is not None and not _rpc_granted(tuple(self.grants.rpcs), method):
            raise not_allowed(self.name, "rpc", method, f"may not call {method}")

    def check(self, refused: str, value: str) -> None:
        """`refused`: profile, project or template."""
        if self.grants is None:
            return
        grants = {"profile": self.grants.profiles, "project": self.grants.projects, "template": self.grants.templates}
        if not _granted(grants[refused], value):
            raise not_allowed(self.name, refused, value, f"may not use {refused} {value[:64]!r}")


ANYONE = Caller("anonymous")


class Callers:
    def __init__(self, settings: Settings) -> None:
        self._open = settings.auth.mode == "none"
        self._by_match = {c.match: Caller(name, c) for name, c in settings.callers.items()}

    def resolve(self, identity: Identity) -> Caller:
        if self._open:
            return ANYONE
        for name in identity.names:
            caller = self._by_match.get(name)
            if caller is not None:
                return caller
        shown = identity.names[0]
        raise GatewayError(
            errors_pb2.ERROR_REASON_CALLER_NOT_ALLOWED,
            f"caller {shown[:128]!r} is not configured on this gateway (callers.<name>.match)",
            metadata={"refused": "caller", "value": shown[:128]},
        )
