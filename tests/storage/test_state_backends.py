"""One contract for both implementations of each piece of shared state: the in-process one
(the embedded default) and the Redis one (REDIS_URL). Rate limits, ephemeral keys and
pub/sub must behave the same whichever the process was started with."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis

from storage.state.ephemeral import EphemeralStore, MemoryEphemeralStore, RedisEphemeralStore
from storage.state.pubsub import MemoryPubSub, PubSub, RedisPubSub
from storage.state.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from tests.helpers import eventually

pytestmark = pytest.mark.asyncio


@dataclass
class Backend:
    """What one test needs from one implementation; `make_*` build a fresh instance."""

    kind: str
    prefix: str
    clients: list[Redis] = field(default_factory=list)
    redis_url: str | None = None

    def redis(self) -> Redis:
        """A new Redis connection pool: two of them stand for two processes."""
        assert self.redis_url is not None
        client = Redis.from_url(self.redis_url, socket_timeout=5)
        self.clients.append(client)
        return client

    def limiter(self) -> RateLimiter:
        if self.kind == "memory":
            return MemoryRateLimiter()
        return RedisRateLimiter(self.redis(), prefix=f"{self.prefix}rl:")

    def ephemeral(self) -> EphemeralStore:
        if self.kind == "memory":
            return MemoryEphemeralStore()
        return RedisEphemeralStore(self.redis(), prefix=f"{self.prefix}eph:")

    def pubsub(self, shared: PubSub | None = None) -> PubSub:
        """In memory every "process" is the same object; with Redis each gets its own connection."""
        if self.kind == "memory":
            return shared or MemoryPubSub()
        return RedisPubSub(self.redis(), prefix=f"{self.prefix}ps:")


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    if request.param == "memory":
        yield Backend("memory", prefix)
        return
    found = Backend("redis", prefix, redis_url=request.getfixturevalue("redis_url"))
    yield found
    if found.clients:
        cleaner = found.clients[0]
        keys = [key async for key in cleaner.scan_iter(match=f"{prefix}*")]
        if keys:
            await cleaner.delete(*keys)
    for client in found.clients:
        await client.aclose()




# ---------------------------------------------------------------------------- rate limits


async def test_rate_limit_allows_up_to_the_limit_then_refuses(backend: Backend) -> None:
    limiter = backend.limiter()
    decisions = [await limiter.hit("login:1.2.3.4", limit=3, window_seconds=10) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    for _ in range(2):
        refused = await limiter.hit("login:1.2.3.4", limit=3, window_seconds=10)
        assert not refused.allowed and refused.remaining == 0
        assert 1 <= refused.retry_after <= 10


async def test_rate_limit_reset_and_independent_keys(backend: Backend) -> None:
    limiter = backend.limiter()
    assert (await limiter.hit("a", limit=1, window_seconds=30)).allowed
    assert not (await limiter.hit("a", limit=1, window_seconds=30)).allowed
    other = await limiter.hit("b", limit=1, window_seconds=30)
    assert other.allowed and other.remaining == 0
    await limiter.reset("a")
    assert (await limiter.hit("a", limit=1, window_seconds=30)).allowed
    assert not (await limiter.hit("b", limit=1, window_seconds=30)).allowed
    await limiter.reset("never-used")  # no error


async def test_rate_limit_window_expires(backend: Backend) -> None:
    limiter = backend.limiter()
    assert (await limiter.hit("k", limit=2, window_seconds=1)).allowed
    assert (await limiter.hit("k", limit=2, window_seconds=1)).allowed
    refused = await limiter.hit("k", limit=2, window_seconds=1)
    assert not refused.allowed and refused.retry_after == 1
    await asyncio.sleep(1.1)
    fresh = await limiter.hit("k", limit=2, window_seconds=1)
    assert fresh.allowed and fresh.remaining == 1


async def test_rate_limit_is_shared_between_instances(backend: Backend) -> None:
    """Two processes share one budget with Redis; in-process limits are per instance."""
    first, second = backend.limiter(), backend.limiter()
    await first.hit("shared", limit=2, window_seconds=10)
    await first.hit("shared", limit=2, window_seconds=10)
    expected_allowed = backend.kind == "memory"
    assert (await second.hit("shared", limit=2, window_seconds=10)).allowed is expected_allowed


async def test_rate_limit_concurrent_hits_count_exactly(backend: Backend) -> None:
    limiter = backend.limiter()
    decisions = await asyncio.gather(*[limiter.hit("burst", limit=5, window_seconds=10) for _ in range(20)])
    assert sum(d.allowed for d in decisions) == 5


# ---------------------------------------------------------------------------- ephemeral keys


async def test_ephemeral_get_set_delete(backend: Backend) -> None:
    store = backend.ephemeral()
    assert await store.get("nonce") is None
    assert await store.set("nonce", "v1", ttl_seconds=30) is True
    assert await store.get("nonce") == "v1"
    assert await store.set("nonce", "v2", ttl_seconds=30) is True  # plain set overwrites
    assert await store.get("nonce") == "v2"
    await store.delete("nonce")
    assert await store.get("nonce") is None
    await store.delete("nonce")  # deleting a missing key is fine


async def test_ephemeral_ttl_expires(backend: Backend) -> None:
    store = backend.ephemeral()
    await store.set("short", "x", ttl_seconds=0.5)
    await store.set("long", "y", ttl_seconds=30)
    assert await store.get("short") == "x"
    await asyncio.sleep(0.6)
    assert await store.get("short") is None
    assert await store.get("long") == "y"


async def test_ephemeral_only_new(backend: Backend) -> None:
    store = backend.ephemeral()
    assert await store.set("otp:123456", "u1", ttl_seconds=0.5, only_new=True) is True
    assert await store.set("otp:123456", "u2", ttl_seconds=30, only_new=True) is False
    assert await store.get("otp:123456") == "u1"
    await asyncio.sleep(0.6)
    assert await store.set("otp:123456", "u3", ttl_seconds=30, only_new=True) is True
    assert await store.get("otp:123456") == "u3"
    await store.delete("otp:123456")
    assert await store.set("otp:123456", "u4", ttl_seconds=30, only_new=True) is True
    results = await asyncio.gather(*[store.set("race", str(i), ttl_seconds=30, only_new=True) for i in range(10)])
    assert results.count(True) == 1


async def test_ephemeral_incr_with_ttl(backend: Backend) -> None:
    store = backend.ephemeral()
    assert [await store.incr("fails", ttl_seconds=1.0) for _ in range(3)] == [1, 2, 3]
    assert await store.get("fails") == "3"
    # the expiry is set by the first increment and not pushed back by later ones
    await asyncio.sleep(0.4)
    assert await store.incr("fails", ttl_seconds=1.0) == 4
    await asyncio.sleep(0.8)
    assert await store.get("fails") is None
    assert await store.incr("fails", ttl_seconds=30) == 1
    values = await asyncio.gather(*[store.incr("many", ttl_seconds=30) for _ in range(25)])
    assert sorted(values) == list(range(1, 26))


# ---------------------------------------------------------------------------- pub/sub


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


async def subscribed(backend: Backend, channel: str, count: int = 1) -> None:
    """Wait until Redis has registered `count` subscribers on the channel (SUBSCRIBE is
    asynchronous with respect to another connection's PUBLISH)."""
    if backend.kind != "redis":
        return
    probe = backend.clients[0]
    name = f"{backend.prefix}ps:{channel}"

    async def ready() -> bool:
        numsub = await probe.pubsub_numsub(name)
        return bool(numsub) and int(numsub[0][1]) >= count

    await eventually(ready)


async def test_pubsub_delivers_a_published_dict(backend: Backend) -> None:
    bus = backend.pubsub()
    inbox = Inbox()
    try:
        await bus.subscribe("revocations", inbox)
        await subscribed(backend, "revocations")
        message = {"session": "s1", "reason": "logout", "n": 3, "nested": {"ok": True}, "list": [1, "a"]}
        await bus.publish("revocations", message)
        await eventually(lambda: len(inbox.messages) == 1)
        assert inbox.messages == [message]
        await bus.publish("other-channel", {"x": 1})
        await bus.publish("revocations", {"session": "s2"})
        await eventually(lambda: len(inbox.messages) == 2)
        assert inbox.messages[1] == {"session": "s2"}
    finally:
        await bus.close()


async def test_pubsub_unsubscribe_stops_delivery(backend: Backend) -> None:
    bus = backend.pubsub()
    leaving, staying = Inbox(), Inbox()
    try:
        unsubscribe = await bus.subscribe("jobs", leaving)
        await bus.subscribe("jobs", staying)
        await subscribed(backend, "jobs")
        await bus.publish("jobs", {"n": 1})
        await eventually(lambda: len(leaving.messages) == 1 and len(staying.messages) == 1)
        await unsubscribe()
        await unsubscribe()  # twice is harmless
        await bus.publish("jobs", {"n": 2})
        await eventually(lambda: len(staying.messages) == 2)
        await asyncio.sleep(0.05)
        assert leaving.messages == [{"n": 1}]

        # the last handler leaving drops the channel; subscribing again works
        only = Inbox()
        unsubscribe_only = await bus.subscribe("solo", only)
        await subscribed(backend, "solo")
        await unsubscribe_only()
        again = Inbox()
        await bus.subscribe("solo", again)
        await subscribed(backend, "solo")
        await bus.publish("solo", {"n": 3})
        await eventually(lambda: again.messages == [{"n": 3}])
        assert only.messages == []
    finally:
        await bus.close()


async def test_pubsub_crosses_processes(backend: Backend) -> None:
    """Two RedisPubSub instances on separate Redis connections stand for two processes;
    in memory, delivery is within one instance."""
    first = backend.pubsub()
    second = backend.pubsub(shared=first)
    inbox_first, inbox_second = Inbox(), Inbox()
    try:
        await first.subscribe("events", inbox_first)
        await second.subscribe("events", inbox_second)
        await subscribed(backend, "events", count=2)
        await first.publish("events", {"from": "first"})
        await second.publish("events", {"from": "second"})
        for inbox in (inbox_first, inbox_second):
            await eventually(lambda inbox=inbox: len(inbox.messages) == 2)
            assert sorted(m["from"] for m in inbox.messages) == ["first", "second"]
    finally:
        await first.close()
        if second is not first:
            await second.close()


async def test_pubsub_close_is_clean(backend: Backend) -> None:
    bus = backend.pubsub()
    failing, inbox = Inbox(), Inbox()

    async def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    await bus.subscribe("c", broken)  # a failing handler does not stop the others
    await bus.subscribe("c", inbox)
    await subscribed(backend, "c")
    await bus.publish("c", {"n": 1})
    await eventually(lambda: inbox.messages == [{"n": 1}])
    before = {t for t in asyncio.all_tasks() if not t.done()}
    await bus.close()

    def leftover() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() if not t.done()} - before

    await eventually(lambda: not leftover(), what="every task started by close done")
    if isinstance(bus, RedisPubSub):
        reader = getattr(bus, "_reader", None)
        assert reader is None or reader.done()
    assert failing.messages == []
    # a bus that never subscribed closes too
    idle = backend.pubsub()
    await idle.close()
