"""A job's read of a whole collection, in chunks that each hold the store briefly.

nx-27017 answers a find whole, in one command, while every other command waits (a cursor's
batch size does not split it): one find over a million rows held the store for minutes and
timed out every other reader. So a job walks the collection in `key` order, a chunk of whole
key values at a time, each a range or an equality on a single-field index of `key` (the
kind nx-27017 answers through SQLite).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

CHUNK = 5000


async def by_key(collection: AsyncCollection, key: str, fields: dict[str, Any],
                 chunk: int = CHUNK) -> AsyncIterator[dict[str, Any]]:
    """Every document once, in `key` order (string keys), `chunk` or so at a time; the last
    key value of a full chunk is read whole by itself, so no key value is split."""
    fields = {**fields, key: 1}
    after = ""
    while True:
        cursor = collection.find({key: {"$gt": after}}, fields).sort(key, ASCENDING)
        docs = [d async for d in cursor.limit(chunk)]
        full = len(docs) == chunk
        if full:
            after = docs[-1][key]
            docs = [d for d in docs if d[key] != after]
            docs += [d async for d in collection.find({key: {"$eq": after}}, fields)]
        for doc in docs:
            yield doc
        if not full:
            return
