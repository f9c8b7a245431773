"""The party store's one contract, held by the in-process and the Redis backend alike."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from storage.party.store import MemoryPartyStore, RedisPartyStore
from tests.helpers import eventually


@pytest.fixture(params=["memory", "redis"])
async def store(request, redis_url):
    if request.param == "memory":
        yield MemoryPartyStore()
        return
    redis = Redis.from_url(redis_url)
    prefix = f"test-{uuid.uuid4().hex[:8]}:party:"
    yield RedisPartyStore(redis, prefix=prefix)
    keys = [k async for k in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def commit(store, party_id: str, version: int, doc: dict, **extra) -> bool:
    return await store.commit(party_id, version, doc, 60_000, **{"due_ms": 9_000, "message": None, **extra})


async def test_commit_is_a_compare_and_set_and_version_0_creates(store) -> None:
    assert await commit(store, "p1", 0, {"n": 1})
    assert not await commit(store, "p1", 0, {"n": 99})  # it exists: no second creation
    doc, version = await store.load("p1")
    assert doc == {"n": 1}
    assert await commit(store, "p1", version, {"n": 2})
    assert not await commit(store, "p1", version, {"n": 3})  # a writer that read the old version
    assert await store.load("p1") == ({"n": 2}, version + 1)
    await store.delete("p1")
    assert await store.load("p1") is None
    assert not await commit(store, "p1", version + 1, {"n": 4})


async def test_due_parties_are_leased_to_one_claimer(store) -> None:
    await store.schedule("a", 1_000)
    await store.schedule("b", 5_000)
    assert await store.claim_due(2_000, 500, 10) == ["a"]
    assert await store.claim_due(2_000, 500, 10) == []  # leased to the first claimer
    assert await store.claim_due(2_600, 500, 10) == ["a"]  # the lease ran out: anyone may take it
    await store.schedule("a", None)
    assert sorted(await store.claim_due(10_000, 500, 10)) == ["b"]


async def test_indexes_and_presence_expire(store) -> None:
    await store.put_index("invite", "h1", "p1", 60_000)
    assert await store.index("invite", "h1") == "p1"
    await store.drop_index("invite", "h1")
    assert await store.index("invite", "h1") is None
    await store.mark_alive("proc-1", 60_000)
    assert await store.alive("proc-1") and not await store.alive("proc-2")


async def test_a_process_whose_presence_ran_out_is_reaped_once_and_its_parties_come_due(store) -> None:
    far = 10**13  # the parties' own deadlines: never, within this test
    await store.mark_alive("short", 300)
    assert await store.mark_alive("long", 60_000) is False  # new: it was not present before
    assert await store.mark_alive("long", 60_000) is True
    assert await commit(store, "x", 0, {"n": 1}, due_ms=far, procs=["short"])
    assert await commit(store, "y", 0, {"n": 1}, due_ms=far, procs=["long"])
    assert await store.claim_due(10**12, 500, 10) == []
    await eventually(lambda: _not(store.alive("short")), "the short presence running out")
    assert await store.reap() == ["short"]
    assert await store.reap() == []  # reaped once, by one caller
    assert await store.claim_due(1, 500, 10) == ["x"]  # its party is due at once
    await store.withdraw("long")  # a process that stops
    assert not await store.alive("long")
    assert await store.claim_due(1, 500, 10) == ["y"]


async def test_a_commit_naming_a_process_no_longer_present_makes_the_party_due(store) -> None:
    await store.mark_alive("here", 60_000)
    assert await commit(store, "x", 0, {"n": 1}, due_ms=10**13, procs=["here"])
    assert await commit(store, "z", 0, {"n": 1}, due_ms=10**13, procs=["here", "reaped-already"])
    assert await store.claim_due(1, 500, 10) == ["z"]


async def _not(answer) -> bool:
    return not await answer
