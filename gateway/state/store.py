"""The state store: everything the gateway remembers, shared by its processes and replicas.

Two backends behind one small interface: SQLite (embedded, one file shared by the workers of a
host) and Redis (shared by replicas). Neither keeps anything in process memory; records expire
in the store. A store that cannot answer raises `StoreUnavailable`, a `GatewayError` with its own
reason, so every caller fails closed with one clear answer.

Idempotency records are bytes: `P` + lease token (16) + fingerprint (32) while a send runs, `D` +
fingerprint (32) + the serialized answer once it is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from gateway.errors import StoreUnavailable as StoreUnavailable  # where the stores and callers look for it
from gateway.state.limits import Limit, Refused

TOKEN_BYTES = 16
FINGERPRINT_BYTES = 32
_PENDING = b"P"
_DONE = b"D"


class Claimed(NamedTuple):
    """This call owns the key: it sends, then completes or releases it with `token`."""

    token: bytes


class Replay(NamedTuple):
    """The key's send is done: its answer, for the request with `fingerprint`."""

    fingerprint: bytes
    response: bytes


class Busy(NamedTuple):
    """Another call owns the key and is still sending."""

    fingerprint: bytes


Claim = Claimed | Replay | Busy


class StateStore(Protocol):
    backend: str

    async def claim(self, key: str, fingerprint: bytes, token: bytes, lease_s: float, ttl_s: float = 0.0) -> Claim:
        """Atomically: own `key` for `lease_s` unless a live record holds it; else say what holds it.
        `ttl_s`: how long the answer will be kept (`complete`'s), for a store that sets the record's
        lifetime at the claim so that completing it writes less."""
        ...

    async def complete(self, key: str, fingerprint: bytes, response: bytes, ttl_s: float) -> None:
        """Record the answer of the key's send, kept for `ttl_s`."""
        ...

    async def release(self, key: str, token: bytes) -> None:
        """Give the key up (the send failed), if `token` still owns it."""
        ...

    async def renew(self, key: str, token: bytes, lease_s: float) -> bool:
        """Extend the claim of `token` by `lease_s` from now; False if it no longer owns the key."""
        ...

    async def reserve_ids(self, count: int, floor: int) -> int:
        """The first of `count` ids no other caller of any process ever gets; the counter starts at `floor`."""
        ...

    async def take(self, limits: Sequence[Limit], counts: Sequence[int] | None = None) -> Refused | None:
        """Charge one send (or `counts[i]`) to every limit atomically, or none of them and say
        which refused."""
        ...

    async def get(self, namespace: str, key: str) -> bytes | None: ...

    async def put(self, namespace: str, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Keep `value` (for `ttl_s`, or until replaced)."""
        ...

    async def append(self, namespace: str, key: str, value: bytes, ttl_s: float, keep: int) -> None:
        """Add to the list at `key` (its last `keep` items, for `ttl_s` from now); safe across processes."""
        ...

    async def items(self, namespace: str, key: str) -> list[bytes]:
        """The list at `key`, oldest first."""
        ...

    def file_sizes(self) -> dict[str, int]:
        """Bytes on this host's disk, by file (a metric, so a file that grows shows); {} for a
        store that keeps none here."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def pending_record(token: bytes, fingerprint: bytes) -> bytes:
    return _PENDING + token + fingerprint


def done_record(fingerprint: bytes, response: bytes) -> bytes:
    return _DONE + fingerprint + response


def parse_record(value: bytes) -> Replay | Busy:
    if value[:1] == _DONE:
        return Replay(value[1 : 1 + FINGERPRINT_BYTES], value[1 + FINGERPRINT_BYTES :])
    return Busy(value[1 + TOKEN_BYTES : 1 + TOKEN_BYTES + FINGERPRINT_BYTES])


def owned_by(value: bytes, token: bytes) -> bool:
    return value[:1] == _PENDING and value[1 : 1 + TOKEN_BYTES] == token
