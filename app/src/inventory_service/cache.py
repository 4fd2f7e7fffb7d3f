"""The item cache in Redis (the cache DB): read-through on reads, written through on every change.

Each entry carries the item's version. A store only replaces an entry holding an older version, so a
slow reader can never put back a value older than one a writer already stored; a deletion stores a
tombstone with the highest version. Entries expire after CACHE_TTL seconds whatever happens, which
bounds staleness when Redis missed a write (it was unreachable when the write committed).
Redis errors never fail a request: the caller falls back to the database.
"""

from __future__ import annotations

import logging
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

TOMBSTONE_VERSION = 2**53
_STORE_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'body', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class ItemCache:
    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._store = redis.register_script(_STORE_IF_NEWER)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(item_id: int) -> str:
        return f"item:{item_id}"

    async def get(self, item_id: int) -> bytes | None:
        """The cached JSON body; b"" for a deleted item; None on a miss or when Redis fails."""
        try:
            body = cast(bytes | None, await self._redis.hget(self._key(item_id), "body"))
        except RedisError as exc:
            log.warning("cache read failed, reading the database: %s", exc)
            body = None
        if body is None:
            self.misses += 1
        else:
            self.hits += 1
        return body

    async def put(self, item_id: int, version: int, body: bytes) -> None:
        try:
            await self._store(keys=[self._key(item_id)], args=[version, body, self._ttl])
        except RedisError as exc:
            log.warning("cache write for item %s failed (it expires within %ss): %s", item_id, self._ttl, exc)

    async def forget(self, item_id: int) -> None:
        await self.put(item_id, TOMBSTONE_VERSION, b"")

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None
