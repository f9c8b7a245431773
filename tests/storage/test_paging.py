"""The cursor query (storage/paging.py): every page is right across ties on the sort key,
and no page sends a top-level `$or`/`$and`, which nx-27017 evaluates in Python over the
whole collection."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from server.core.paging import decode_cursor, encode_cursor
from storage.paging import paginate


class Finds(CommandListener):
    def __init__(self) -> None:
        self.filters: list[dict[str, Any]] = []

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.filters.append(dict(event.command.get("filter", {})))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def recorded(mongo_url: str) -> AsyncIterator[tuple[Any, Finds]]:
    finds = Finds()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, event_listeners=[finds])
    name = f"paging_{uuid.uuid4().hex[:12]}"
    yield client[name].rows, finds
    await client.drop_database(name)
    await client.close()


async def test_pages_cross_ties_without_or(recorded: tuple[Any, Finds]) -> None:
    rows, finds = recorded
    # Many rows share each key, so pages end in the middle of a tie.
    docs = [{"_id": f"r{n:03d}", "owner": "a" if n % 5 else "b", "key": n // 7} for n in range(60)]
    await rows.insert_many(docs)
    expected = sorted((d for d in docs if d["owner"] == "a"), key=lambda d: (d["key"], d["_id"]), reverse=True)
    seen: list[str] = []
    cursor = None
    while True:
        page = await paginate(rows, {"owner": {"$eq": "a"}}, sort_key="key", limit=4, cursor=cursor)
        seen += [d["_id"] for d in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [d["_id"] for d in expected]
    assert finds.filters and all(not any(k in ("$or", "$and", "$nor") for k in f) for f in finds.filters), finds.filters


def test_cursors_keep_the_type_of_their_sort_value() -> None:
    # Cursors are kept by value: 1, 1.0 and True are equal keys to a plain cache, but not
    # the same position in a sort by a float field.
    values = [1, 1.0, True, 1.5, None, "1"]
    cursors = [encode_cursor(v, "id") for v in values]
    assert len(set(cursors)) == len(values)
    for value, cursor in zip(values, cursors, strict=True):
        key, _id = decode_cursor(cursor)
        assert (type(key), key, _id) == (type(value), value, "id")
