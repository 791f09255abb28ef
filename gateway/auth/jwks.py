"""Signing keys for JWT verification: a JWKS file (re-read when it changes) and/or a JWKS URL
(fetched with the gateway's HTTP stack, cached, refreshed at most every `refresh_s` and once
early when a token names a key id it has not seen, so a rotation is picked up without a restart)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import jwt

from gateway.clock import Clock

log = logging.getLogger(__name__)
_MIN_REFETCH_S = 10.0  # an unknown kid triggers at most one fetch this often
_RESTAT_S = 1.0  # the JWKS file is looked at this often (and at once for a kid it lacks)


class KeySource:
    def __init__(self, clock: Clock, file: Path | None, url: str | None, refresh_s: float, http: httpx.AsyncClient):
        self._clock = clock
        self._file = file
        self._url = url
        self._refresh_s = refresh_s
        self._http = http
        self._file_mtime: float | None = None
        self._file_keys: dict[str, jwt.PyJWK] = {}
        self._url_keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -1e18
        self._statted_at = -1e18
        self._lock = asyncio.Lock()
        if file is not None:
            self._load_file()  # at start: a JWKS that cannot be read stops start-up (ValueError)

    def _load_file(self) -> None:
        assert self._file is not None
        mtime = self._file.stat().st_mtime
        if mtime == self._file_mtime:
            return
        self._file_keys = _parse(json.loads(self._file.read_text()))
        self._file_mtime = mtime

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        if self._file is not None:
            now = self._clock.monotonic()
            if now - self._statted_at >= _RESTAT_S or _pick(self._file_keys, kid) is None:
                self._statted_at = now
                try:
                    self._load_file()
                except (OSError, ValueError):
                    log.warning("could not re-read the JWKS file; keeping the keys it had", exc_info=True)
        found = _pick(self._file_keys, kid)
        if found is not None or self._url is None:
            return found
        now = self._clock.monotonic()
        stale = now - self._fetched_at > self._refresh_s
        unseen = _pick(self._url_keys, kid) is None and now - self._fetched_at > _MIN_REFETCH_S
        if stale or unseen:
            await self._fetch()
        return _pick(self._url_keys, kid)

    async def _fetch(self) -> None:
        async with self._lock:
            assert self._url is not None
            try:
                answer = await self._http.get(self._url, timeout=5.0)
                answer.raise_for_status()
                self._url_keys = _parse(answer.json())
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("could not fetch the JWKS URL", extra={"error_type": type(exc).__name__})
            self._fetched_at = self._clock.monotonic()


def _parse(document: Any) -> dict[str, jwt.PyJWK]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWKS document ({"keys": [...]})')
    keys = {}
    for i, entry in enumerate(document["keys"]):
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # a key type or algorithm we cannot use: skip it, keep the others
        keys[str(entry.get("kid", f"#{i}"))] = key
    return keys


def _pick(keys: dict[str, jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
    if kid is not None:
        return keys.get(kid)
    return next(iter(keys.values())) if len(keys) == 1 else None
