"""The notification inbox's reads are one user's rows through an index, on MongoDB and on
nx-27017: nx-27017 ignores compound indexes and compiles a bare equality to a form no index
serves, so with only the compound `(user_id, created_ms)` index every inbox page, unread
badge and catch-up read scanned every user's notifications while the store held its lock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from storage.mongo import ensure_indexes
from storage.notifications.inbox import INDEXES, NotificationRepository
from tests.helpers import Finds

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def watched(mongo_url: str) -> AsyncIterator[tuple[AsyncDatabase, Finds]]:
    finds = Finds()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, event_listeners=[finds])
    name = f"inbox_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name], finds
    finally:
        await client.drop_database(name)
        await client.close()


async def _plan(db: AsyncDatabase, flt: dict[str, object]) -> str:
    explained = await db.command("explain", {"find": "notifications", "filter": flt,
                                             "sort": {"created_ms": -1, "_id": -1}, "limit": 21})
    return str(explained["queryPlanner"]["winningPlan"])


async def test_inbox_reads_are_answered_through_an_index(watched) -> None:
    db, finds = watched
    await ensure_indexes(db, INDEXES)
    repo = NotificationRepository(db)
    for n in range(12):
        for user in ("u1", "u2", "u3"):
            await repo.insert({"user_id": user, "created_ms": 1000 + n, "read": n % 3 == 0, "title": f"{user}-{n}"})
    first = await repo.page("u2", False, 5, None)
    second = await repo.page("u2", False, 5, first.next_cursor)
    assert [d["title"] for d in first.items + second.items] == [f"u2-{n}" for n in range(11, 1, -1)]
    unread = await repo.page("u2", True, 20, None)
    assert [d["title"] for d in unread.items] == [f"u2-{n}" for n in range(11, -1, -1) if n % 3]
    assert await repo.unread_count("u2") == 8
    later = await repo.after("u2", first.items[-1]["_id"], 10)
    assert [d["title"] for d in later] == [f"u2-{n}" for n in range(8, 12)]
    assert await repo.mark_read("u2", None, 2000) == 8 and await repo.unread_count("u2") == 0
    assert await repo.unread_count("u1") == 8  # the others' untouched

    info = await db.client.admin.command("buildInfo")
    if not str(info.get("process", "")).startswith("nx"):
        return
    reads = [f for f in finds.filters if "user_id" in f]
    assert len(reads) >= 5, finds.filters
    for flt in reads:
        plan = await _plan(db, flt)
        assert "USING INDEX" in plan, (flt, plan)
    # The unread badge counts through an aggregate whose $match is this filter.
    assert "USING INDEX" in await _plan(db, {"user_id": {"$eq": "u1"}, "read": False})
