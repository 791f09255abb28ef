"""A keyed send's RqUID and store key come from one hash, and are the values earlier releases
used (records already in a store, and RqUIDs SmartPush has seen, still match after an upgrade)."""

from __future__ import annotations

import hashlib
import uuid

from gateway.idempotency import scoped_key, send_key


def test_one_hash_gives_the_rq_uid_and_the_store_key_earlier_releases_used() -> None:
    scoped = scoped_key("billing\0default", "project-1", "order-42")
    key = send_key(scoped)
    assert key.store_key == hashlib.sha256(scoped.encode()).hexdigest()
    assert key.rq_uid == str(uuid.UUID(bytes=hashlib.sha256(scoped.encode()).digest()[:16], version=4))
    assert uuid.UUID(key.rq_uid).version == 4
    assert send_key(scoped_key("crm\0default", "project-1", "order-42")) != key  # keys are per caller
