"""The shared state store: SQLite embedded by default, Redis for replicas (see store.py)."""

from __future__ import annotations

import sqlite3

from gateway.clock import Clock
from gateway.config import ConfigError, StateSettings
from gateway.state.sqlite_store import SqliteStore
from gateway.state.store import StateStore

__all__ = ["StateStore", "open_store"]


def open_store(settings: StateSettings, clock: Clock) -> StateStore:
    """The configured store. A path or URL that cannot be used stops start-up; a Redis that is
    merely down does not (readiness reports it, and keyless sends go on)."""
    if settings.backend == "sqlite":
        try:
            return SqliteStore(settings.sqlite_path, clock)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError("state.sqlite_path", f"cannot open {str(settings.sqlite_path)!r} ({exc})") from None
    assert settings.redis_url is not None  # the settings check it
    from gateway.state.redis_store import RedisStore  # redis-py: ~6 MB, only for replicas that use it

    try:
        return RedisStore(
            settings.redis_url.get_secret_value(),
            prefix=settings.key_prefix,
            password=settings.resolve_redis_password(),
            ca_file=settings.redis_ca_file,
            timeout_s=settings.timeout_s,
        )
    except ValueError:  # never the URL itself: it may hold a password
        raise ConfigError("state.redis_url", "not a redis://, rediss:// or unix:// URL") from None
