"""The one pagination query: stable keyset (cursor) paging over (sort key, _id).

The cursor format, the limits and the page shape are `server.core.paging`'s.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from server.core.paging import DEFAULT_LIMIT, MAX_LIMIT, PageResult, decode_cursor, encode_cursor


async def paginate(
    collection: AsyncCollection,
    query: dict[str, Any],
    *,
    sort_key: str,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    descending: bool = True,
    projection: dict[str, Any] | None = None,
) -> PageResult:
    """One page of `query` ordered by (sort_key, _id); pass the returned cursor for the next."""
    limit = max(1, min(MAX_LIMIT, limit))
    direction = -1 if descending else 1
    flt = dict(query)
    if cursor:
        key, last_id = decode_cursor(cursor)
        op = "$lt" if descending else "$gt"
        after = {"$or": [{sort_key: {op: key}}, {sort_key: key, "_id": {op: last_id}}]}
        flt = {"$and": [flt, after]} if flt else after
    docs = [
        doc
        async for doc in collection.find(flt, projection)
        .sort([(sort_key, direction), ("_id", direction)])
        .limit(limit + 1)
    ]
    next_cursor = None
    if len(docs) > limit:
        docs = docs[:limit]
        last = docs[-1]
        next_cursor = encode_cursor(_lookup(last, sort_key), last["_id"])
    return PageResult(docs, next_cursor)


def _lookup(doc: dict[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
