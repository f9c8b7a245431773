"""The per-process cache behind the sign-in check and the profile and activity reads: least
recently used entries go first, and a read in flight when its key or tag is forgotten is
returned but not kept."""

from __future__ import annotations

import asyncio

import pytest

from server.core.local_cache import LocalCache

pytestmark = pytest.mark.asyncio


async def answer(value: str) -> str:
    return value


async def test_the_least_recently_used_entry_goes_first() -> None:
    cache: LocalCache[str] = LocalCache(60, 2)
    await cache.load("a", lambda: answer("A"))
    await cache.load("b", lambda: answer("B"))
    assert cache.get("a") == "A"  # "b" is now the least recently used
    await cache.load("c", lambda: answer("C"))
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")


async def test_a_read_in_flight_when_its_key_or_tag_is_forgotten_is_not_kept() -> None:
    cache: LocalCache[str] = LocalCache(60, 10)
    for name in ("k", ("user", "u1")):
        started, release = asyncio.Event(), asyncio.Event()

        async def slow(started: asyncio.Event = started, release: asyncio.Event = release) -> str:
            started.set()
            await release.wait()
            return "old"

        reading = asyncio.create_task(cache.load("k", slow, tags=[("user", "u1")]))
        await started.wait()
        cache.forget(name)
        release.set()
        assert await reading == "old"  # the caller gets its answer
        assert cache.get("k") is None  # but nobody after it
    await cache.load("k", lambda: answer("new"), tags=[("user", "u1")])
    cache.forget(("user", "u2"))
    assert cache.get("k") == "new"
    cache.forget(("user", "u1"))
    assert cache.get("k") is None and len(cache) == 0


async def test_an_entry_lives_at_most_its_own_lifetime() -> None:
    now = [0.0]
    cache: LocalCache[str] = LocalCache(10, 10, clock=lambda: now[0])
    await cache.load("short", lambda: answer("S"), ttl_s=2)
    await cache.load("long", lambda: answer("L"), ttl_s=100)  # never longer than the cache's own
    now[0] = 3
    assert (cache.get("short"), cache.get("long")) == (None, "L")
    now[0] = 11
    assert cache.get("long") is None


async def test_a_batch_read_keeps_what_it_found_unless_anything_was_forgotten_meanwhile() -> None:
    cache: LocalCache[dict] = LocalCache(60, 10)
    asked: list[list] = []

    async def read(keys: list) -> dict:
        asked.append(keys)
        return {k: {"id": k, "title": "t1"} for k in keys if k != "gone"}

    found = await cache.load_many(["e1", "e2", "gone"], read, lambda doc: (doc["title"],))
    assert set(found) == {"e1", "e2"} and asked == [["e1", "e2", "gone"]]
    assert set(await cache.load_many(["e1", "e2", "gone"], read)) == {"e1", "e2"}
    assert asked[-1] == ["gone"]  # only the miss is read again
    cache.forget("t1")  # by the tag of both
    assert cache.get("e1") is None and cache.get("e2") is None

    started, release = asyncio.Event(), asyncio.Event()

    async def slow(keys: list) -> dict:
        started.set()
        await release.wait()
        return {k: {"id": k, "title": "t9"} for k in keys}

    reading = asyncio.create_task(cache.load_many(["e3"], slow, lambda doc: (doc["title"],)))
    await started.wait()
    cache.forget("t9")  # its tags are known only from the answer: any forget spoils it
    release.set()
    assert set(await reading) == {"e3"}
    assert cache.get("e3") is None


class Reads:
    """A read that waits to be released and counts how often it ran."""

    def __init__(self) -> None:
        self.count = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self) -> str:
        self.count += 1
        self.started.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return f"read {self.count}"


async def test_callers_that_miss_one_key_together_share_one_read() -> None:
    cache: LocalCache[str] = LocalCache(60, 10)
    reads = Reads()
    callers = [asyncio.create_task(cache.load("k", reads)) for _ in range(20)]
    await reads.started.wait()
    await asyncio.sleep(0)  # every caller has reached the cache
    reads.release.set()
    assert await asyncio.gather(*callers) == ["read 1"] * 20
    assert reads.count == 1 and cache.get("k") == "read 1"


async def test_a_caller_after_a_forget_reads_again_instead_of_joining() -> None:
    cache: LocalCache[str] = LocalCache(60, 10)
    first, second = Reads(), Reads()
    before = asyncio.create_task(cache.load("k", first, tags=["user"]))
    await first.started.wait()
    cache.forget("user")
    after = asyncio.create_task(cache.load("k", second))
    await asyncio.wait_for(second.started.wait(), 10)  # a read of its own, while the spoiled one is in flight
    first.release.set()
    second.release.set()
    assert (await before, await after) == ("read 1", "read 1")  # each its own read
    assert first.count == second.count == 1
    assert cache.get("k") == "read 1"  # the second's answer, kept; the first's was not


async def test_a_failed_read_reaches_every_caller_and_is_not_kept() -> None:
    cache: LocalCache[str] = LocalCache(60, 10)
    reads = Reads()
    reads.fail = ConnectionError("store down")
    callers = [asyncio.create_task(cache.load("k", reads)) for _ in range(3)]
    await reads.started.wait()
    await asyncio.sleep(0)
    reads.release.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes) and reads.count == 1
    reads.fail = None
    assert await cache.load("k", reads) == "read 2"


async def test_cancelling_the_first_caller_does_not_cancel_the_others_read() -> None:
    cache: LocalCache[str] = LocalCache(60, 10)
    reads = Reads()
    first = asyncio.create_task(cache.load("k", reads))
    await reads.started.wait()
    joiner = asyncio.create_task(cache.load("k", reads))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    reads.release.set()
    assert await joiner == "read 1" and reads.count == 1
