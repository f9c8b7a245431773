"""Where watch parties live: Redis when configured (every process serves every member,
and a process that dies loses nothing), in process otherwise. One interface, two backends.

A party is one JSON record under one key with a version (0: no record, so a commit on
version 0 creates the party). `commit` is a compare-and-set on that version that also
reschedules the party and publishes its events in the same atomic step, so two processes
can never write over each other's change and events leave in the order the changes were
applied, without a lock around the change. Deadlines (a buffering wait, a dropped seat,
idle end) sit in one sorted set; `claim_due` leases the due ones to the calling process,
so a process that dies mid-way leaves them to another.

Presence: each process renews its own lifetime in one sorted set, and every commit notes
the party under each process that holds a connected seat in it. A process whose lifetime
ran out is reaped once, by whichever process sees it first: its parties become due at
once, and their next tick drops its seats. Holding parties therefore costs nothing per
party while every process is alive.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from redis.asyncio import Redis

Record = tuple[dict[str, Any], int]  # the party and its version
Publish = Callable[[dict[str, Any]], Awaitable[None]]


class PartyStore(Protocol):
    async def load(self, party_id: str) -> Record | None: ...

    async def commit(self, party_id: str, version: int, doc: dict[str, Any], ttl_ms: int, *, due_ms: int | None,
                     message: dict[str, Any] | None, procs: Iterable[str] = ()) -> bool: ...

    async def delete(self, party_id: str) -> None: ...

    async def put_index(self, name: str, key: str, party_id: str, ttl_ms: int) -> None: ...

    async def index(self, name: str, key: str) -> str | None: ...

    async def drop_index(self, name: str, key: str) -> None: ...

    async def schedule(self, party_id: str, due_ms: int | None) -> None: ...

    async def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[str]: ...

    async def mark_alive(self, process_id: str, ttl_ms: int) -> bool: ...

    async def alive(self, process_id: str) -> bool: ...

    async def withdraw(self, process_id: str) -> None: ...

    async def reap(self) -> list[str]: ...


class MemoryPartyStore:
    """One process: everything in dictionaries (the event loop makes each call atomic)."""

    def __init__(self, publish: Publish | None = None, clock: Callable[[], float] = time.time) -> None:
        self._publish = publish
        self._clock = clock
        self._parties: dict[str, tuple[float, int, str]] = {}
        self._index: dict[tuple[str, str], tuple[float, str]] = {}
        self._due: dict[str, int] = {}
        self._alive: dict[str, float] = {}
        self._seats: dict[str, set[str]] = {}  # process id -> parties where it holds connected seats

    def _now_ms(self) -> float:
        return self._clock() * 1000

    async def load(self, party_id: str) -> Record | None:
        item = self._parties.get(party_id)
        if item is None:
            return None
        if item[0] <= self._now_ms():
            del self._parties[party_id]
            return None
        return json.loads(item[2]), item[1]

    async def commit(self, party_id: str, version: int, doc: dict[str, Any], ttl_ms: int, *, due_ms: int | None,
                     message: dict[str, Any] | None, procs: Iterable[str] = ()) -> bool:
        current = await self.load(party_id)
        if (current[1] if current is not None else 0) != version:
            return False
        self._parties[party_id] = (self._now_ms() + ttl_ms, version + 1, json.dumps(doc))
        for proc in procs:
            self._seats.setdefault(proc, set()).add(party_id)
            if due_ms is not None and proc not in self._alive:
                due_ms = 0
        await self.schedule(party_id, due_ms)
        if message is not None and self._publish is not None:
            await self._publish(message)
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

    async def mark_alive(self, process_id: str, ttl_ms: int) -> bool:
        known = process_id in self._alive
        self._alive[process_id] = self._now_ms() + ttl_ms
        return known

    async def alive(self, process_id: str) -> bool:
        return self._alive.get(process_id, 0) > self._now_ms()

    async def withdraw(self, process_id: str) -> None:
        self._alive.pop(process_id, None)
        self._release(process_id)

    async def reap(self) -> list[str]:
        now = self._now_ms()
        dead = [proc for proc, until in self._alive.items() if until <= now]
        for proc in dead:
            del self._alive[proc]
            self._release(proc)
        return dead

    def _release(self, process_id: str) -> None:
        for party_id in self._seats.pop(process_id, ()):
            if party_id in self._due:
                self._due[party_id] = 0


# KEYS: the party, the deadlines, the presence set, then one seat set per process holding
# connected seats. ARGV: version, doc, ttl, due ('' to unschedule), message ('' for none),
# channel, party id, then those processes. A seat held through a process that is no longer
# present (reaped before this commit noted the party under it) makes the party due at once.
_COMMIT = """
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(v) + 1), 'doc', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local due = ARGV[4]
for i = 4, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[7])
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
  if due ~= '' and not redis.call('ZSCORE', KEYS[3], ARGV[4 + i]) then due = '0' end
end
if due == '' then redis.call('ZREM', KEYS[2], ARGV[7])
else redis.call('ZADD', KEYS[2], tonumber(due), ARGV[7]) end
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[6], ARGV[5]) end
return 1
"""

# Presence is timed by Redis's own clock, so processes on machines whose clocks differ agree.
_MARK_ALIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
"""

_ALIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = redis.call('ZSCORE', KEYS[1], ARGV[1])
if until_ms and tonumber(until_ms) > now then return 1 end
return 0
"""

# KEYS: the presence set, the deadlines. ARGV: the seat-set prefix, then the process to
# withdraw ('' to reap every process whose lifetime ran out). Each dead process is removed
# once, so one caller reaps it; its parties become due now (0) if they still have a deadline.
_REAP = """
local procs
if ARGV[2] ~= '' then
  procs = {ARGV[2]}
else
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  procs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
end
local reaped = {}
for _, proc in ipairs(procs) do
  redis.call('ZREM', KEYS[1], proc)
  local seats = ARGV[1] .. proc
  for _, id in ipairs(redis.call('SMEMBERS', seats)) do
    if redis.call('ZSCORE', KEYS[2], id) then redis.call('ZADD', KEYS[2], 0, id) end
  end
  redis.call('DEL', seats)
  table.insert(reaped, proc)
end
return reaped
"""

# Lease the due parties: push their deadline out by the lease, so each goes to one process
# now and comes back to any process if that one dies before rescheduling it.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id) end
return due
"""


class RedisPartyStore:
    """`channel` is the pub/sub channel, as Redis names it, that commits publish on."""

    def __init__(self, redis: Redis, prefix: str = "party:", channel: str = "party.events") -> None:
        self._redis = redis
        self._prefix = prefix
        self._channel = channel
        self._commit = redis.register_script(_COMMIT)
        self._claim = redis.register_script(_CLAIM)
        self._mark_alive = redis.register_script(_MARK_ALIVE)
        self._alive = redis.register_script(_ALIVE)
        self._reap = redis.register_script(_REAP)

    def _key(self, party_id: str) -> str:
        return f"{self._prefix}p:{party_id}"

    @property
    def _deadlines(self) -> str:
        return f"{self._prefix}due"

    @property
    def _procs(self) -> str:
        return f"{self._prefix}procs"

    def _seats(self, process_id: str = "") -> str:
        return f"{self._prefix}seats:{process_id}"

    async def load(self, party_id: str) -> Record | None:
        version, doc = await self._redis.hmget(self._key(party_id), ["v", "doc"])
        if version is None or doc is None:
            return None
        return json.loads(doc), int(version)

    async def commit(self, party_id: str, version: int, doc: dict[str, Any], ttl_ms: int, *, due_ms: int | None,
                     message: dict[str, Any] | None, procs: Iterable[str] = ()) -> bool:
        procs = list(procs)
        keys = [self._key(party_id), self._deadlines, self._procs, *(self._seats(p) for p in procs)]
        args = [str(version), json.dumps(doc), ttl_ms, "" if due_ms is None else due_ms,
                "" if message is None else json.dumps(message), self._channel, party_id, *procs]
        return bool(await self._commit(keys=keys, args=args))

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

    async def mark_alive(self, process_id: str, ttl_ms: int) -> bool:
        return not await self._mark_alive(keys=[self._procs], args=[process_id, ttl_ms])

    async def alive(self, process_id: str) -> bool:
        return bool(await self._alive(keys=[self._procs], args=[process_id]))

    async def withdraw(self, process_id: str) -> None:
        await self._reap(keys=[self._procs, self._deadlines], args=[self._seats(), process_id])

    async def reap(self) -> list[str]:
        reaped = await self._reap(keys=[self._procs, self._deadlines], args=[self._seats(), ""])
        return [p.decode() if isinstance(p, bytes) else p for p in reaped]
