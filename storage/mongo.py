"""Connecting to MongoDB and creating each repository's indexes at start."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

IndexSpecs = Mapping[str, Iterable[IndexModel]]


def connect(url: str, *, timeout_ms: int = 5000) -> AsyncMongoClient:
    """A client that returns timezone-aware UTC datetimes, as every REST body needs."""
    return AsyncMongoClient(
        url,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        appname="nameless",
    )


async def ensure_indexes(db: AsyncDatabase, specs: IndexSpecs) -> None:
    """Idempotent: creating an index that already exists with the same keys is a no-op."""
    for collection, indexes in specs.items():
        models = list(indexes)
        if models:
            await db[collection].create_indexes(models)


async def ping(db: AsyncDatabase) -> None:
    await db.command("ping")
