"""A short-lived, in-process cache for lists that are the same for many viewers (the
shared home rows, the popular titles a new profile is offered), keyed by what makes them
differ (the maturity ceiling). One computation per key even when many requests arrive on
a cold or expired entry; entries live `ttl_s` seconds, so a change reaches them within
that time on every process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

DEFAULT_TTL_S = 30.0


class SharedCache:
    def __init__(self, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        entry = self._entries.get(key)
        if entry and entry[0] > self._clock():
            return entry[1]
        async with self._locks.setdefault(key, asyncio.Lock()):
            entry = self._entries.get(key)
            if entry and entry[0] > self._clock():
                return entry[1]
            value = await compute()
            self._entries[key] = (self._clock() + self._ttl, value)
            return value
