"""Turns per key within one process: callers for the same key (one party, one account) go
one at a time, in arrival order, and a key's lock lives only while someone holds or waits
for it. A shared lock in Redis still guards against other processes; queueing here first
means this process's own callers never poll that lock against each other."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable


class Turns:
    def __init__(self) -> None:
        self._held: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def of(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._held.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._held[key]

    def __len__(self) -> int:
        return len(self._held)
