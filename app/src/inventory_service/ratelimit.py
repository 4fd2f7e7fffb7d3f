"""A rate limit shared by every instance: GCRA in one Redis script, timed by Redis's own clock.

GCRA (the generic cell rate algorithm) allows a burst of ``limit`` requests and then one every
60/limit seconds, per client address. One key per client, one round trip per request, and no clock
skew between instances because the script reads the time from Redis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - burst * interval
if wait > 0 then
  return {0, tostring(wait), 0}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now))
return {1, '0', burst - math.ceil((new_tat - now) / interval)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: int
    remaining: int


class RateLimiter:
    def __init__(self, redis: Redis, per_minute: int) -> None:
        self.per_minute = per_minute
        self._interval_ms = 60_000 / per_minute if per_minute else 0.0
        self._script = redis.register_script(_GCRA)

    async def check(self, client: str) -> Decision:
        allowed, wait_ms, remaining = await self._script(
            keys=[f"ratelimit:{client}"], args=[repr(self._interval_ms), self.per_minute])
        retry_after = max(1, math.ceil(float(wait_ms) / 1000)) if not allowed else 0
        return Decision(allowed=bool(allowed), retry_after_seconds=retry_after, remaining=max(0, int(remaining)))
