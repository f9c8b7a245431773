"""A per-process cache of answers read from the store, dropped at once when a change is announced.

Used where every request would otherwise repeat the same reads (the sign-in check, an
account's profiles, a profile's watch activity). Each entry lives at most `ttl_s` (or less,
per entry); the least recently used entry goes when `max_entries` is reached. An entry is
found by its key and can carry tags (a user id, a session id), and `forget` drops every entry
whose key or tag is named: the process that makes a change calls it before it answers, and
every other process calls it when the change's pub/sub message arrives (`listen`). A message
lost with a Redis outage is bounded by the entry lifetime.

A read that was in flight when its key or one of its tags was forgotten returns what it
read to its caller but does not keep it: otherwise an answer read just before a revocation
could be kept for a whole lifetime after it.

Callers that miss the same key while its read is in flight wait for that one read rather
than each making their own: when a busy entry expires, the requests of the next few
milliseconds would otherwise all queue the same query on the store at once. A caller that
comes after the key was forgotten starts a read of its own.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, Generic, Protocol, TypeVar

V = TypeVar("V")


class Subscriptions(Protocol):
    """The part of the platform's pub/sub (storage.state.pubsub) a cache listens with."""

    async def subscribe(self, channel: str, handler: Callable[[Any], Awaitable[None]]
                        ) -> Callable[[], Awaitable[None]]: ...


class _Entry(Generic[V]):
    __slots__ = ("expires", "tags", "value")

    def __init__(self, value: V, expires: float, tags: tuple[Hashable, ...]) -> None:
        self.value = value
        self.expires = expires
        self.tags = tags


class _Read:
    """One read in flight; `stale` once its key or a tag is forgotten before it ends (any
    forget at all when `names` is None: a read whose tags are known only from its answer)."""

    __slots__ = ("names", "stale")

    def __init__(self, names: frozenset[Hashable] | None) -> None:
        self.names = names
        self.stale = False


class LocalCache(Generic[V]):
    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._tagged: dict[Hashable, set[Hashable]] = {}
        self._reads: set[_Read] = set()
        self._loading: dict[Hashable, tuple[_Read, asyncio.Future[V]]] = {}
        self._unsubscribe: list[Callable[[], Awaitable[None]]] = []

    # --- reading ---------------------------------------------------------------------

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    async def load(self, key: Hashable, read: Callable[[], Awaitable[V]], *, tags: Iterable[Hashable] = (),
                   ttl_s: float | None = None) -> V:
        """The kept value, or `read()`'s answer, kept unless something it names was forgotten
        while it ran. `ttl_s` shortens this entry's lifetime (never lengthens it)."""
        found = self.get(key)
        if found is not None:
            return found
        loading = self._loading.get(key)
        if loading is not None:
            return await asyncio.shield(loading[1])
        tags = tuple(tags)
        pending = _Read(frozenset((key, *tags)))
        # A task of its own, so that a caller cancelled meanwhile does not cancel the others' read.
        task: asyncio.Future[V] = asyncio.ensure_future(read())
        self._reads.add(pending)
        self._loading[key] = (pending, task)
        try:
            value = await asyncio.shield(task)
        finally:
            self._reads.discard(pending)
            if self._loading.get(key, (None,))[0] is pending:
                del self._loading[key]
        if not pending.stale:
            self._keep(key, value, tags, self.ttl_s if ttl_s is None else min(ttl_s, self.ttl_s))
        return value

    async def load_many(self, keys: Iterable[Hashable],
                        read: Callable[[list[Hashable]], Awaitable[dict[Hashable, V]]],
                        tags: Callable[[V], Iterable[Hashable]] = lambda value: ()) -> dict[Hashable, V]:
        """The kept values of `keys`, the others read at once by `read(missing)`; what it
        finds is kept (tagged by `tags(value)`) unless anything was forgotten meanwhile.
        Keys it does not find are not kept."""
        found: dict[Hashable, V] = {}
        missing: list[Hashable] = []
        for key in keys:
            value = self.get(key)
            if value is None:
                missing.append(key)
            else:
                found[key] = value
        if not missing:
            return found
        pending = _Read(None)
        self._reads.add(pending)
        try:
            fresh = await read(missing)
        finally:
            self._reads.discard(pending)
        for key, value in fresh.items():
            if not pending.stale:
                self._keep(key, value, tuple(tags(value)), self.ttl_s)
            found[key] = value
        return found

    def put(self, key: Hashable, value: V) -> None:
        """Keep a value made here rather than read (text derived from other kept values)."""
        self._keep(key, value, (), self.ttl_s)

    def _keep(self, key: Hashable, value: V, tags: tuple[Hashable, ...], ttl_s: float) -> None:
        if ttl_s <= 0 or self.max_entries <= 0:
            return
        self._drop(key)
        while len(self._entries) >= self.max_entries:
            self._drop(next(iter(self._entries)))
        self._entries[key] = _Entry(value, self._clock() + ttl_s, tags)
        for tag in tags:
            self._tagged.setdefault(tag, set()).add(key)

    # --- invalidation ----------------------------------------------------------------

    def forget(self, *names: Hashable) -> None:
        """Drop the entries whose key or a tag is one of `names`, and spoil reads of them in flight."""
        wanted = set(names)
        for pending in self._reads:
            if not pending.stale and (pending.names is None or not wanted.isdisjoint(pending.names)):
                pending.stale = True
        self._stop_joining()
        for name in wanted:
            self._drop(name)
            for key in list(self._tagged.get(name, ())):
                self._drop(key)

    def clear(self) -> None:
        for pending in self._reads:
            pending.stale = True
        self._loading.clear()
        self._entries.clear()
        self._tagged.clear()

    async def listen(self, pubsub: Subscriptions, channel: str,
                     names: Callable[[dict[str, Any]], Iterable[Hashable]] | None = None) -> None:
        """Forget `names(message)` whenever `channel` announces a change (until `stop`);
        without `names`, every message drops everything."""

        async def on_message(message: Any) -> None:
            if names is None:
                self.clear()
            elif isinstance(message, dict):
                self.forget(*names(message))

        self._unsubscribe.append(await pubsub.subscribe(channel, on_message))

    async def stop(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, []
        for stop in unsubscribe:
            await stop()

    def __len__(self) -> int:
        return len(self._entries)

    def _stop_joining(self) -> None:
        """Reads spoiled by a forget finish for their callers only; later callers read again."""
        for key in [key for key, (pending, _) in self._loading.items() if pending.stale]:
            del self._loading[key]

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._tagged.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tagged[tag]


def same_objects(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether two tuples hold the very same objects in order: what a value derived from
    kept values checks before it is reused (an equal but new object means a new read)."""
    return len(a) == len(b) and all(map(operator.is_, a, b))
