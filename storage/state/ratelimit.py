"""Fixed-window rate limits: an in-process implementation and a Redis one, one interface.

The in-process limiter serves a single process; with REDIS_URL every process shares the
same counters so a client cannot multiply its budget by hitting several processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_seconds: int) -> Decision: ...

    async def reset(self, key: str) -> None: ...


class MemoryRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, limit: int, window_seconds: int) -> Decision:
        now = self._clock()
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        expires, count = self._windows.get(key, (0.0, 0))
        if expires <= now:
            expires, count = now + window_seconds, 0
        count += 1
        self._windows[key] = (expires, count)
        retry = max(1, math.ceil(expires - now))
        return Decision(count <= limit, max(0, limit - count), retry)

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)


_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str = "rl:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_HIT)

    async def hit(self, key: str, limit: int, window_seconds: int) -> Decision:
        count, ttl_ms = await self._script(keys=[self._prefix + key], args=[window_seconds * 1000])
        retry = max(1, math.ceil(int(ttl_ms) / 1000))
        return Decision(int(count) <= limit, max(0, limit - int(count)), retry)

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
