"""The shared state store for replicas: Redis through redis-py's asyncio client.

A claim is one Lua script (read the key; if absent, set it with the lease as its TTL), so two
replicas can never both own a key. Every record carries its TTL in Redis; nothing is kept in
the process. Connection errors and timeouts become `StoreUnavailable`; the client reconnects by
itself on the next command, so the gateway resumes when Redis is back without a restart.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.state.limits import Limit, Refused
from gateway.state.store import Claim, Claimed, StoreUnavailable, done_record, parse_record, pending_record

# KEYS[1]: the idempotency key. ARGV: the pending record, the lease in ms.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# ARGV[1]: the pending record prefix ("P" + token): delete only if this claim still owns the key.
_RELEASE = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, string.len(ARGV[1])) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""
# ARGV: the pending record prefix, the lease in ms: extend only while this claim owns the key.
_RENEW = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
# ARGV: count, floor - 1 (as text: Lua would print a large number as 1.7e+12). The counter
# starts there the first time, then only grows.
_RESERVE = """
redis.call('SET', KEYS[1], ARGV[2], 'NX')
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


# KEYS: each limit's key. ARGV: per limit its kind (r|w), limit, size and the sends to charge
# (1, or a lease's worth: quotas.py). Redis's clock, so every
# replica counts on one time line; the arithmetic is gateway/state/limits.py's `decide`.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local writes = {}
for i = 1, #KEYS do
  local kind, limit, size, count = ARGV[i*4-3], tonumber(ARGV[i*4-2]), tonumber(ARGV[i*4-1]), tonumber(ARGV[i*4])
  if kind == 'r' then
    local interval = 1 / limit
    local tolerance = interval * size
    local arrival = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now) + interval * count
    if arrival - now > tolerance + 1e-9 then return {i, tostring(arrival - tolerance - now)} end
    writes[#writes + 1] = {KEYS[i], string.format('%.6f', arrival), math.ceil((arrival - now + 1) * 1000)}
  else
    local index = math.floor(now / size)
    local elapsed = now - index * size
    local ck = KEYS[i] .. ':' .. string.format('%d', index)
    local pk = KEYS[i] .. ':' .. string.format('%d', index - 1)
    local current = tonumber(redis.call('GET', ck) or '0')
    local previous = tonumber(redis.call('GET', pk) or '0')
    if previous * (size - elapsed) / size + current + count > limit + 1e-9 then
      local retry
      if current + 1 > limit or previous == 0 then retry = size - elapsed
      else retry = (size - elapsed) - (limit - 1 - current) * size / previous end
      return {i, tostring(math.max(retry, 0.001))}
    end
    writes[#writes + 1] = {ck, string.format('%d', current + count), math.ceil(2 * size * 1000)}
  end
end
for _, w in ipairs(writes) do redis.call('SET', w[1], w[2], 'PX', w[3]) end
return false
"""


class RedisStore:
    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        password: str | None = None,
        ca_file: Path | None = None,
        timeout_s: float = 1.0,
    ) -> None:
        options: dict[str, Any] = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "health_check_interval": 30,
            "decode_responses": False,
        }
        if password is not None:
            options["password"] = password
        if url.startswith("rediss://"):
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
            if ca_file is not None:
                options["ssl_ca_certs"] = str(ca_file)
        self._redis: aioredis.Redis = aioredis.Redis.from_url(url, **options)
        self._prefix = prefix
        self._claim = self._redis.register_script(_CLAIM)
        self._release = self._redis.register_script(_RELEASE)
        self._reserve = self._redis.register_script(_RESERVE)
        self._renew = self._redis.register_script(_RENEW)
        self._take = self._redis.register_script(_TAKE)

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(self.backend, exc) from exc

    async def claim(self, key: str, fingerprint: bytes, token: bytes, lease_s: float, ttl_s: float = 0.0) -> Claim:
        # The key's TTL is its lease; `complete` sets the answer's (SET with PX: one round trip either way).
        pending = pending_record(token, fingerprint)
        held = await self._call(self._claim(keys=[self._key("idem", key)], args=[pending, int(lease_s * 1000)]))
        if held is None:
            return Claimed(token)
        return parse_record(bytes(held))

    async def complete(self, key: str, fingerprint: bytes, response: bytes, ttl_s: float) -> None:
        record = done_record(fingerprint, response)
        await self._call(self._redis.set(self._key("idem", key), record, px=max(1, int(ttl_s * 1000))))

    async def release(self, key: str, token: bytes) -> None:
        await self._call(self._release(keys=[self._key("idem", key)], args=[pending_record(token, b"")]))

    async def renew(self, key: str, token: bytes, lease_s: float) -> bool:
        prefix = pending_record(token, b"")
        owned = await self._call(self._renew(keys=[self._key("idem", key)], args=[prefix, int(lease_s * 1000)]))
        return bool(owned)

    async def reserve_ids(self, count: int, floor: int) -> int:
        last = await self._call(self._reserve(keys=[self._key("counter", "message_id")], args=[count, str(floor - 1)]))
        return int(last) - count + 1

    async def take(self, limits: Sequence[Limit], counts: Sequence[int] | None = None) -> Refused | None:
        args: list[str | float] = []
        for i, limit in enumerate(limits):
            args += ["r" if limit.kind == "rate" else "w", limit.limit, limit.size, 1 if counts is None else counts[i]]
        keys = [self._key("quota", limit.key) for limit in limits]
        refused = await self._call(self._take(keys=keys, args=args))
        if not refused:
            return None
        index, retry = refused
        return Refused(limits[int(index) - 1], float(retry))

    async def get(self, namespace: str, key: str) -> bytes | None:
        value = await self._call(self._redis.get(self._key(namespace, key)))
        return None if value is None else bytes(value)

    async def put(self, namespace: str, key: str, value: bytes, ttl_s: float | None = None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        await self._call(self._redis.set(self._key(namespace, key), value, px=px))

    async def append(self, namespace: str, key: str, value: bytes, ttl_s: float, keep: int) -> None:
        name = self._key(namespace, key)
        pipe = self._redis.pipeline(transaction=True)
        pipe.rpush(name, value)
        pipe.ltrim(name, -keep, -1)
        pipe.pexpire(name, max(1, int(ttl_s * 1000)))
        await self._call(pipe.execute())

    async def items(self, namespace: str, key: str) -> list[bytes]:
        values = await self._call(self._redis.lrange(self._key(namespace, key), 0, -1))
        return [bytes(v) for v in values]

    def file_sizes(self) -> dict[str, int]:
        return {}  # its files are the Redis server's (used_memory and its persistence are its metrics)

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
