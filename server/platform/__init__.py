"""The infrastructure one process runs on: database, cache, pub/sub, metrics, keys.

Built once at start from the settings and handed to the app and the services; nothing
here is a module global, so tests build as many platforms as they need.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from config import Settings
from server.platform.metrics import Metrics
from storage import mongo
from storage.state.ephemeral import EphemeralStore, MemoryEphemeralStore, RedisEphemeralStore
from storage.state.pubsub import MemoryPubSub, PubSub, RedisPubSub
from storage.state.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from storage.state.slots import MemorySocketSlots, RedisSocketSlots, SocketSlots

log = logging.getLogger(__name__)


@dataclass
class Platform:
    settings: Settings
    mongo_client: AsyncMongoClient
    db: AsyncDatabase
    redis: Redis | None
    rate_limiter: RateLimiter
    ephemeral: EphemeralStore
    pubsub: PubSub
    metrics: Metrics
    secret_key: bytes
    instance_id: str = ""
    # In-process parts that must be ready before this process is (the catalog read model):
    # name → a function answering 'up' or why not.
    local_checks: dict[str, Callable[[], str]] = field(default_factory=dict)
    socket_slots: SocketSlots = field(default_factory=MemorySocketSlots)
    mongo_url: str = field(default="", repr=False)  # may hold credentials; for worker processes

    async def check(self) -> dict[str, str]:
        """Each dependency's state: 'up', or why it is down. Used by /readyz."""
        results: dict[str, str] = {}

        async def probe(name: str, coro: Any) -> None:
            try:
                await asyncio.wait_for(coro, timeout=2.0)
                results[name] = "up"
            except Exception as exc:  # the reason is for ops; never includes credentials
                results[name] = f"down: {type(exc).__name__}"

        checks = [probe("database", mongo.ping(self.db))]
        if self.redis is not None:
            checks.append(probe("cache", self.redis.ping()))
        else:
            results["cache"] = "up"
        await asyncio.gather(*checks)
        for name, state in self.local_checks.items():
            results[name] = state()
        return results

    async def close(self) -> None:
        await self.pubsub.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        await self.mongo_client.close()


def resolve_secret_key(settings: Settings) -> bytes:
    """The configured key, or one generated once and kept under the data dir (embedded mode)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = Path(settings.data_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


async def _instance_id(db: AsyncDatabase) -> str:
    """A document written on first start; seeing the same id after a restart proves the
    data survived."""
    # update_one, not find_one_and_update: nx-27017 drops $setOnInsert on the latter
    # (docs/storage-compat.md).
    await db.meta.update_one(
        {"_id": "instance"},
        {"$setOnInsert": {"instance_id": uuid.uuid4().hex, "created_at": dt.datetime.now(dt.UTC)}},
        upsert=True,
    )
    doc = await db.meta.find_one({"_id": "instance"})
    return str(doc["instance_id"])


async def build_platform(
    settings: Settings,
    *,
    mongo_url: str,
) -> Platform:
    client = mongo.connect(mongo_url, timeout_ms=settings.dependency_timeout_ms)
    db = client[settings.mongo_db]
    redis: Redis | None = None
    if settings.redis_url is not None:
        timeout = settings.dependency_timeout_ms / 1000
        # One quick retry, not redis-py's default backoff of seconds: a request waiting on a
        # Redis that is down answers 503 within the dependency timeout.
        # A blocking pool: a burst beyond the limit (thousands of seats dropping at once)
        # waits for a connection, up to the dependency timeout, instead of failing at once
        # with MaxConnectionsError as redis-py's default pool does.
        pool = BlockingConnectionPool.from_url(
            settings.redis_url.get_secret_value(), max_connections=settings.redis_max_connections,
            timeout=timeout, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.05), 1))
        redis = Redis.from_pool(pool)
        await redis.ping()
        ns = settings.mongo_db  # one Redis may serve several deployments or test databases
        limiter: RateLimiter = RedisRateLimiter(redis, prefix=f"{ns}:rl:")
        ephemeral: EphemeralStore = RedisEphemeralStore(redis, prefix=f"{ns}:eph:")
        pubsub: PubSub = RedisPubSub(redis, prefix=f"{ns}:ps:")
        slots: SocketSlots = RedisSocketSlots(redis, prefix=f"{ns}:slots:")
    else:
        limiter, ephemeral, pubsub = MemoryRateLimiter(), MemoryEphemeralStore(), MemoryPubSub()
        slots = MemorySocketSlots()
    platform = Platform(
        settings=settings,
        mongo_client=client,
        db=db,
        redis=redis,
        rate_limiter=limiter,
        ephemeral=ephemeral,
        pubsub=pubsub,
        metrics=Metrics(),
        secret_key=resolve_secret_key(settings),
        socket_slots=slots,
        mongo_url=mongo_url,
    )
    if isinstance(pubsub, RedisPubSub):
        pubsub.on_error = platform.metrics.pubsub_errors.inc
    platform.instance_id = await _instance_id(db)
    return platform
