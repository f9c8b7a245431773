"""Socket slots: how many sockets a user holds across every process, for the per-user cap.

Each socket holds a slot `<process>|<socket>` in a set per user. A process proves it is
alive by refreshing its own score in one sorted set every few seconds (one write per
process, not one per socket), and a claim counts only the slots of processes that are
alive, dropping the others: the slots of a process that was killed free themselves
within `ALIVE_MS`. In-process slots serve one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from redis.asyncio import Redis

log = logging.getLogger(__name__)

ALIVE_MS = 15_000  # a process silent this long no longer holds its sockets' slots
REFRESH_S = 3.0
USER_KEY_MS = 86_400_000  # a user's set outlives its last claim by a day

# KEYS: the user's slots, the live processes. ARGV: slot, limit, user key lifetime.
_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = 0
for _, slot in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local process = string.match(slot, '^(.*)|')
  local until_ms = process and redis.call('ZSCORE', KEYS[2], process)
  if until_ms and tonumber(until_ms) > now then
    live = live + 1
  else
    redis.call('SREM', KEYS[1], slot)
  end
end
if live >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

_ALIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""


class SocketSlots(Protocol):
    async def start(self, process_id: str) -> None: ...

    async def stop(self) -> None: ...

    async def claim(self, user_id: str, socket_id: str, limit: int) -> bool: ...

    def release(self, user_id: str, socket_id: str) -> None: ...


class MemorySocketSlots:
    def __init__(self) -> None:
        self._held: dict[str, set[str]] = {}

    async def start(self, process_id: str) -> None:
        return None

    async def stop(self) -> None:
        self._held.clear()

    async def claim(self, user_id: str, socket_id: str, limit: int) -> bool:
        held = self._held.setdefault(user_id, set())
        if len(held) >= limit:
            return False
        held.add(socket_id)
        return True

    def release(self, user_id: str, socket_id: str) -> None:
        held = self._held.get(user_id)
        if held is not None:
            held.discard(socket_id)
            if not held:
                del self._held[user_id]


class RedisSocketSlots:
    def __init__(self, redis: Redis, prefix: str = "slots:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._claim = redis.register_script(_CLAIM)
        self._alive = redis.register_script(_ALIVE)
        self._process = ""
        self._refresher: asyncio.Task[None] | None = None
        # Claims and releases are each written in one pipeline per round trip: 10,000
        # sockets connecting or closing at once cost a few round trips, not 10,000, and
        # the connection pool is not made to open one connection per socket in flight.
        self._claims: list[tuple[str, str, int, asyncio.Future[bool]]] = []
        self._claiming: asyncio.Task[None] | None = None
        self._releases: list[tuple[str, str]] = []
        self._flushing: asyncio.Task[None] | None = None

    @property
    def _processes(self) -> str:
        return f"{self._prefix}alive"

    def _user(self, user_id: str) -> str:
        return f"{self._prefix}u:{user_id}"

    async def start(self, process_id: str) -> None:
        self._process = process_id
        await self._alive(keys=[self._processes], args=[process_id, ALIVE_MS])
        self._refresher = asyncio.ensure_future(self._refresh())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        with contextlib.suppress(Exception):  # the others stop counting this process's sockets now
            await self._redis.zrem(self._processes, self._process)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self._alive(keys=[self._processes], args=[self._process, ALIVE_MS])
            except Exception:
                log.warning("socket slots: liveness refresh failed", exc_info=True)

    def _slot(self, socket_id: str) -> str:
        return f"{self._process}|{socket_id}"

    async def claim(self, user_id: str, socket_id: str, limit: int) -> bool:
        """Claims made while one batch is on its way go together in the next; Redis runs
        them one after another, so two claims of one user in a batch count each other."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._claims.append((user_id, socket_id, limit, answer))
        if self._claiming is None:
            self._claiming = asyncio.ensure_future(self._claim_batches())
        return await answer

    async def _claim_batches(self) -> None:
        try:
            while self._claims:
                batch, self._claims = self._claims, []
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for user_id, socket_id, limit, _ in batch:
                            await self._claim(keys=[self._user(user_id), self._processes],
                                              args=[self._slot(socket_id), limit, USER_KEY_MS], client=pipe)
                        results = await pipe.execute(raise_on_error=False)
                except asyncio.CancelledError:
                    for *_, answer in batch + self._claims:
                        answer.cancel()
                    self._claims = []
                    raise
                except Exception as exc:
                    results = [exc] * len(batch)
                for (user_id, socket_id, _, answer), result in zip(batch, results, strict=True):
                    if answer.done():  # its connect was abandoned: give back what it got
                        if result == 1:
                            self.release(user_id, socket_id)
                        continue
                    if isinstance(result, Exception):
                        answer.set_exception(result)
                    else:
                        answer.set_result(bool(result))
        finally:
            self._claiming = None

    def release(self, user_id: str, socket_id: str) -> None:
        self._releases.append((user_id, self._slot(socket_id)))
        if self._flushing is None:
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            while self._releases:
                batch, self._releases = self._releases, []
                async with self._redis.pipeline(transaction=False) as pipe:
                    for user_id, slot in batch:
                        pipe.srem(self._user(user_id), slot)
                    await pipe.execute()
        except Exception:  # a slot left behind is dropped with its process's liveness
            log.warning("socket slots: release failed", exc_info=True)
        finally:
            self._flushing = None
