"""Where watch parties live: Redis when configured (every process serves every member,
and a process that dies loses nothing), in process otherwise. One interface, two backends.

A party is one JSON record under one key with a version; `replace` is a compare-and-set on
that version, so two processes can never write over each other's change. Deadlines (a
buffering wait, a dropped seat, idle end) sit in one sorted set; `claim_due` leases the due
ones to the calling process, so a process that dies mid-way leaves them to another.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from redis.asyncio import Redis

Record = tuple[dict[str, Any], int]  # the party and its version


class PartyStore(Protocol):
    async def create(self, party_id: str, doc: dict[str, Any], ttl_ms: int) -> bool: ...

    async def load(self, party_id: str) -> Record | None: ...

    async def replace(self, party_id: str, version: int, doc: dict[str, Any], ttl_ms: int) -> bool: ...

    async def delete(self, party_id: str) -> None: ...

    async def put_index(self, name: str, key: str, party_id: str, ttl_ms: int) -> None: ...

    async def index(self, name: str, key: str) -> str | None: ...

    async def drop_index(self, name: str, key: str) -> None: ...

    async def schedule(self, party_id: str, due_ms: int | None) -> None: ...

    async def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[str]: ...

    async def mark_alive(self, process_id: str, ttl_ms: int) -> None: ...

    async def alive(self, process_id: str) -> bool: ...


class MemoryPartyStore:
    """One process: everything in dictionaries (the event loop makes each call atomic)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._parties: dict[str, tuple[float, int, str]] = {}
        self._index: dict[tuple[str, str], tuple[float, str]] = {}
        self._due: dict[str, int] = {}
        self._alive: dict[str, float] = {}

    def _now_ms(self) -> float:
        return self._clock() * 1000

    async def create(self, party_id: str, doc: dict[str, Any], ttl_ms: int) -> bool:
        if await self.load(party_id) is not None:
            return False
        self._parties[party_id] = (self._now_ms() + ttl_ms, 1, json.dumps(doc))
        return True

    async def load(self, party_id: str) -> Record | None:
        item = self._parties.get(party_id)
        if item is None:
            return None
        if item[0] <= self._now_ms():
            del self._parties[party_id]
            return None
        return json.loads(item[2]), item[1]

    async def replace(self, party_id: str, version: int, doc: dict[str, Any], ttl_ms: int) -> bool:
        current = await self.load(party_id)
        if current is None or current[1] != version:
            return False
        self._parties[party_id] = (self._now_ms() + ttl_ms, version + 1, json.dumps(doc))
        return True

    async def delete(self, party_id: str) -> None:
        self._parties.pop(party_id, None)
        self._due.pop(party_id, None)

    async def put_index(self, name: str, key: str, party_id: str, ttl_ms: int) -> None:
        self._index[(name, key)] = (self._now_ms() + ttl_ms, party_id)

    async def index(self, name: str, key: str) -> str | None:
        item = self._index.get((name, key))
        if item is None or item[0] <= self._now_ms():
            self._index.pop((name, key), None)
            return None
        return item[1]

    async def drop_index(self, name: str, key: str) -> None:
        self._index.pop((name, key), None)

    async def schedule(self, party_id: str, due_ms: int | None) -> None:
        if due_ms is None:
            self._due.pop(party_id, None)
        else:
            self._due[party_id] = due_ms

    async def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[str]:
        due = sorted((at, pid) for pid, at in self._due.items() if at <= now_ms)[:limit]
        for _, pid in due:
            self._due[pid] = now_ms + lease_ms
        return [pid for _, pid in due]

    async def mark_alive(self, process_id: str, ttl_ms: int) -> None:
        self._alive[process_id] = self._now_ms() + ttl_ms

    async def alive(self, process_id: str) -> bool:
        return self._alive.get(process_id, 0) > self._now_ms()


_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', '1', 'doc', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

_REPLACE = """
local v = redis.call('HGET', KEYS[1], 'v')
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(v) + 1), 'doc', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# Lease the due parties: push their deadline out by the lease, so each goes to one process
# now and comes back to any process if that one dies before rescheduling it.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id) end
return due
"""


class RedisPartyStore:
    def __init__(self, redis: Redis, prefix: str = "party:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._create = redis.register_script(_CREATE)
        self._replace = redis.register_script(_REPLACE)
        self._claim = redis.register_script(_CLAIM)

    def _key(self, party_id: str) -> str:
        return f"{self._prefix}p:{party_id}"

    @property
    def _deadlines(self) -> str:
        return f"{self._prefix}due"

    async def create(self, party_id: str, doc: dict[str, Any], ttl_ms: int) -> bool:
        return bool(await self._create(keys=[self._key(party_id)], args=[json.dumps(doc), ttl_ms]))

    async def load(self, party_id: str) -> Record | None:
        version, doc = await self._redis.hmget(self._key(party_id), ["v", "doc"])
        if version is None or doc is None:
            return None
        return json.loads(doc), int(version)

    async def replace(self, party_id: str, version: int, doc: dict[str, Any], ttl_ms: int) -> bool:
        return bool(await self._replace(keys=[self._key(party_id)], args=[str(version), json.dumps(doc), ttl_ms]))

    async def delete(self, party_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(party_id))
            pipe.zrem(self._deadlines, party_id)
            await pipe.execute()

    async def put_index(self, name: str, key: str, party_id: str, ttl_ms: int) -> None:
        await self._redis.set(f"{self._prefix}{name}:{key}", party_id, px=max(1, ttl_ms))

    async def index(self, name: str, key: str) -> str | None:
        value = await self._redis.get(f"{self._prefix}{name}:{key}")
        return value.decode() if isinstance(value, bytes) else value

    async def drop_index(self, name: str, key: str) -> None:
        await self._redis.delete(f"{self._prefix}{name}:{key}")

    async def schedule(self, party_id: str, due_ms: int | None) -> None:
        if due_ms is None:
            await self._redis.zrem(self._deadlines, party_id)
        else:
            await self._redis.zadd(self._deadlines, {party_id: due_ms})

    async def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[str]:
        due = await self._claim(keys=[self._deadlines], args=[now_ms, lease_ms, limit])
        return [d.decode() if isinstance(d, bytes) else d for d in due]

    async def mark_alive(self, process_id: str, ttl_ms: int) -> None:
        await self._redis.set(f"{self._prefix}proc:{process_id}", "1", px=ttl_ms)

    async def alive(self, process_id: str) -> bool:
        return bool(await self._redis.exists(f"{self._prefix}proc:{process_id}"))
