"""A send's identities: its RqUID, and for a keyed send the key it has in the state store.

Apart from the idempotency protocol (gateway/idempotency.py) because every send makes an RqUID:
this module has no coroutine, so the compiled build compiles it (pyproject's mypyc exclude list).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from smartpush.gateway.v1 import push_service_pb2

from gateway.entropy import random_bytes


def scoped_key(profile: str, project_id: str, key: str) -> str:
    return f"{profile}\0{project_id}\0{key}"


@dataclass(frozen=True, slots=True)
class SendKey:
    """A send's RqUID and, when it has an idempotency key, its key in the state store."""

    rq_uid: str
    store_key: str | None = None


def uuid4_text(sixteen: bytes) -> str:
    """`str(uuid.UUID(bytes=sixteen, version=4))`: the version and variant bits set, in 8-4-4-4-12
    hex. Made on every send, and uuid.UUID's constructor is a few microseconds of Python."""
    b = bytearray(sixteen)
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_rq_uid() -> str:
    """A random uuid4 RqUID, as `str(uuid.uuid4())` makes one."""
    return uuid4_text(random_bytes(16))


def send_key(scoped: str) -> SendKey:
    """Both from one hash of the scoped key: a stable uuid4-shaped RqUID, so SmartPush sees the same
    id on a repeated call, and the store key (the store sees a hash: keys are the caller's text,
    with profile and project in them)."""
    digest = hashlib.sha256(scoped.encode()).digest()
    return SendKey(uuid4_text(digest[:16]), digest.hex())


def fingerprint(req: push_service_pb2.SendRequest) -> bytes:
    return hashlib.sha256(req.SerializeToString(deterministic=True)).digest()
