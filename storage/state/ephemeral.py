"""Short-lived key/value state (throttles, one-time nonces, presence): in-process or Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis


class EphemeralStore(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl_seconds: float, *, only_new: bool = False) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, ttl_seconds: float) -> int: ...


class MemoryEphemeralStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, tuple[float, str]] = {}

    def _live(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._data[key]
            return None
        return item[1]

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def set(self, key: str, value: str, ttl_seconds: float, *, only_new: bool = False) -> bool:
        if only_new and self._live(key) is not None:
            return False
        self._data[key] = (self._clock() + ttl_seconds, value)
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, ttl_seconds: float) -> int:
        current = self._live(key)
        value = int(current or 0) + 1
        expires = self._data[key][0] if current is not None else self._clock() + ttl_seconds
        self._data[key] = (expires, str(value))
        return value


class RedisEphemeralStore:
    def __init__(self, redis: Redis, prefix: str = "eph:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def get(self, key: str) -> str | None:
        value = await self._redis.get(self._prefix + key)
        return value.decode() if isinstance(value, bytes) else value

    async def set(self, key: str, value: str, ttl_seconds: float, *, only_new: bool = False) -> bool:
        done = await self._redis.set(
            self._prefix + key, value, px=max(1, int(ttl_seconds * 1000)), nx=only_new
        )
        return bool(done)

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def incr(self, key: str, ttl_seconds: float) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._prefix + key)
            pipe.pexpire(self._prefix + key, max(1, int(ttl_seconds * 1000)), nx=True)
            value, _ = await pipe.execute()
        return int(value)
