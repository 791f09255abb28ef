"""A keyed send's RqUID and store key come from one hash, and are the values earlier releases
used (records already in a store, and RqUIDs SmartPush has seen, still match after an upgrade)."""

from __future__ import annotations

import hashlib
import uuid

from gateway.send_keys import scoped_key, send_key


def test_one_hash_gives_the_rq_uid_and_the_store_key_earlier_releases_used() -> None:
    scoped = scoped_key("billing\0default", "project-1", "order-42")
    key = send_key(scoped)
    assert key.store_key == hashlib.sha256(scoped.encode()).hexdigest()
    assert key.rq_uid == str(uuid.UUID(bytes=hashlib.sha256(scoped.encode()).digest()[:16], version=4))
    assert uuid.UUID(key.rq_uid).version == 4
    assert send_key(scoped_key("crm\0default", "project-1", "order-42")) != key  # keys are per caller


def test_rq_uids_are_the_uuid_modules_text_for_any_bytes() -> None:
    import os

    from gateway.send_keys import new_rq_uid, uuid4_text

    samples = [bytes(16), b"\xff" * 16, *(os.urandom(16) for _ in range(2000))]
    for raw in samples:
        assert uuid4_text(raw) == str(uuid.UUID(bytes=raw, version=4))
    made = {new_rq_uid() for _ in range(1000)}
    assert len(made) == 1000
    assert all(uuid.UUID(u).version == 4 and uuid.UUID(u).variant == uuid.RFC_4122 for u in made)
