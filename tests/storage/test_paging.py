"""The cursor query (storage/paging.py): every page is right across ties on the sort key,
and no page sends a top-level `$or`/`$and`, which nx-27017 evaluates in Python over the
whole collection."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from server.core.paging import decode_cursor, encode_cursor
from storage.notifications.inbox import NotificationRepository
from storage.paging import paginate
from tests.helpers import Finds, id_ranges


@pytest.fixture
async def recorded(mongo_url: str) -> AsyncIterator[tuple[Any, Finds]]:
    finds = Finds()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, event_listeners=[finds])
    name = f"paging_{uuid.uuid4().hex[:12]}"
    yield client[name].rows, finds
    await client.drop_database(name)
    await client.close()


async def _every_page(rows: Any) -> list[str]:
    """The ids of owner `a`'s rows, page after page of 4 by `key`, newest first."""
    seen: list[str] = []
    cursor = None
    while True:
        page = await paginate(rows, {"owner": {"$eq": "a"}}, sort_key="key", limit=4, cursor=cursor)
        seen += [d["_id"] for d in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen


async def test_pages_cross_ties_without_or(recorded: tuple[Any, Finds]) -> None:
    rows, finds = recorded
    # Many rows share each key, so pages end in the middle of a tie.
    docs = [{"_id": f"r{n:03d}", "owner": "a" if n % 5 else "b", "key": n // 7} for n in range(60)]
    await rows.insert_many(docs)
    expected = sorted((d for d in docs if d["owner"] == "a"), key=lambda d: (d["key"], d["_id"]), reverse=True)
    seen = await _every_page(rows)
    assert seen == [d["_id"] for d in expected]
    assert finds.filters and all(not any(k in ("$or", "$and", "$nor") for k in f) for f in finds.filters), finds.filters


async def test_pages_never_range_over_id(recorded: tuple[Any, Finds]) -> None:
    """nx-27017 answers any range on `_id` by reading the whole collection into Python, so a
    cursor page that sent one would cost a full scan of, say, a million history rows."""
    rows, finds = recorded
    docs = [{"_id": f"r{n:03d}", "owner": "a", "key": n // 3} for n in range(30)]
    await rows.insert_many(docs)
    seen: list[str] = []
    cursor = None
    for ascending in (False, True):
        while True:
            page = await paginate(rows, {"owner": {"$eq": "a"}}, sort_key="key", limit=4, cursor=cursor,
                                  descending=not ascending)
            seen += [d["_id"] for d in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen == sorted(seen[:30], reverse=True) + sorted(seen[30:])
    assert sorted(seen[:30]) == sorted(seen[30:]) == [d["_id"] for d in docs]
    assert len(finds.filters) > 2 and not id_ranges(finds), id_ranges(finds)


async def test_a_cursor_with_an_id_of_another_type_is_not_an_error(recorded: tuple[Any, Finds]) -> None:
    rows, _ = recorded
    await rows.insert_many([{"_id": f"r{n}", "owner": "a", "key": 1} for n in range(3)])
    page = await paginate(rows, {"owner": {"$eq": "a"}}, sort_key="key", limit=2,
                          cursor=encode_cursor(1, 5))
    assert page.items == []


async def test_missed_notifications_cross_ties_without_a_range_on_id(mongo_url: str) -> None:
    """The reconnect catch-up (NotificationRepository.after) is the same two-query cursor."""
    finds = Finds()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, event_listeners=[finds])
    name = f"paging_{uuid.uuid4().hex[:12]}"
    try:
        repo = NotificationRepository(client[name])
        docs = [{"_id": f"n{n:02d}", "user_id": "u" if n % 4 else "v", "created_ms": n // 3} for n in range(24)]
        await client[name].notifications.insert_many(docs)
        mine = [d["_id"] for d in docs if d["user_id"] == "u"]
        for i, seen in enumerate(mine):
            got = [d["_id"] for d in await repo.after("u", seen, 5)]
            assert got == mine[i + 1:i + 6]
        assert finds.filters and not id_ranges(finds), id_ranges(finds)
    finally:
        await client.drop_database(name)
        await client.close()


async def test_a_page_is_one_query_unless_the_cursor_row_moved(recorded: tuple[Any, Finds]) -> None:
    rows, finds = recorded
    await rows.insert_many([{"_id": f"r{n:03d}", "owner": "a", "key": n} for n in range(30)])
    seen = await _every_page(rows)
    assert seen == [f"r{n:03d}" for n in range(29, -1, -1)]
    assert len(finds.filters) == 8, finds.filters  # 8 pages, one find each
    first = await paginate(rows, {"owner": {"$eq": "a"}}, sort_key="key", limit=4)
    await rows.update_one({"_id": "r026"}, {"$set": {"key": 100}})  # the cursor's row is watched again
    after = await paginate(rows, {"owner": {"$eq": "a"}}, sort_key="key", limit=4, cursor=first.next_cursor)
    assert [d["_id"] for d in after.items] == ["r025", "r024", "r023", "r022"]


def test_cursors_keep_the_type_of_their_sort_value() -> None:
    # Cursors are kept by value: 1, 1.0 and True are equal keys to a plain cache, but not
    # the same position in a sort by a float field.
    values = [1, 1.0, True, 1.5, None, "1"]
    cursors = [encode_cursor(v, "id") for v in values]
    assert len(set(cursors)) == len(values)
    for value, cursor in zip(values, cursors, strict=True):
        key, _id = decode_cursor(cursor)
        assert (type(key), key, _id) == (type(value), value, "id")
