"""The one pagination query: stable keyset (cursor) paging over (sort key, _id).

The cursor format, the limits and the page shape are `server.core.paging`'s.

A page after the first is usually one sargable query: the rows from the cursor's key on
(`key <= k` descending), in which the cursor's own row comes first or after a few others of
its key, and the page is what follows it. When that row is not there (it moved or went, or
the tie on its key is longer), two sargable queries, never one `$or`: first the rest of the
rows that share the cursor's sort key (`key == k`, those past the cursor's `_id` kept here),
then the rows past that key (`key past k`). nx-27017 evaluates any top-level
`$or`/`$and`, and any range on `_id`, in Python over the whole collection
(docs/storage-compat.md), while each of these two is a plain indexed filter on it and on
MongoDB. The first of the two reads the whole tie on the cursor's key (one row where the
key is a time in ms), not just the rows past the cursor.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from server.core.paging import DEFAULT_LIMIT, MAX_LIMIT, PageResult, decode_cursor, encode_cursor

TIE_SLACK = 4  # rows of the cursor's key before its own row that one query still reads past


def _with(query: dict[str, Any], field: str, condition: dict[str, Any]) -> dict[str, Any] | None:
    """`query` with `condition` on `field` added to what it already asks of that field, or
    None when the two cannot be merged into one operator document."""
    existing = query.get(field)
    if existing is None:
        return {**query, field: condition}
    if isinstance(existing, dict) and all(k.startswith("$") for k in existing) and not set(existing) & set(condition):
        return {**query, field: {**existing, **condition}}
    return None


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
    order = [(sort_key, direction), ("_id", direction)]
    docs: list[dict[str, Any]] = []
    if cursor:
        key, last_id = decode_cursor(cursor)
        op = "$lt" if descending else "$gt"
        same_key = _with(query, sort_key, {"$eq": key})
        past_key = _with(query, sort_key, {op: key})
        if same_key is None or past_key is None:  # a caller filtering on the keys itself: rare, not hot
            after = {"$or": [{sort_key: {op: key}}, {sort_key: key, "_id": {op: last_id}}]}
            flt = {"$and": [query, after]} if query else after
            docs = [d async for d in collection.find(flt, projection).sort(order).limit(limit + 1)]
        else:
            docs = await _from_cursor_row(collection, query, sort_key, key, last_id, limit, descending, projection)
            if docs is None:
                tie = collection.find(same_key, projection).sort(order)
                docs = [d async for d in tie if _past(d["_id"], last_id, descending)][: limit + 1]
                if len(docs) <= limit:
                    rest = collection.find(past_key, projection).sort(order).limit(limit + 1 - len(docs))
                    docs += [d async for d in rest]
    else:
        docs = [d async for d in collection.find(query, projection).sort(order).limit(limit + 1)]
    next_cursor = None
    if len(docs) > limit:
        docs = docs[:limit]
        last = docs[-1]
        next_cursor = encode_cursor(_lookup(last, sort_key), last["_id"])
    return PageResult(docs, next_cursor)


async def _from_cursor_row(collection: AsyncCollection, query: dict[str, Any], sort_key: str, key: Any,
                           last_id: Any, limit: int, descending: bool,
                           projection: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The usual case in one query: the rows from the cursor's key on, which start with the
    cursor's own row (after at most TIE_SLACK others of its key), and the rows after it. None
    when that row is not found where it was (moved, gone, a longer tie): the two queries then."""
    from_key = _with(query, sort_key, {"$lte" if descending else "$gte": key})
    if from_key is None:
        return None
    direction = -1 if descending else 1
    read_limit = limit + 2 + TIE_SLACK
    cursor = collection.find(from_key, projection).sort([(sort_key, direction), ("_id", direction)])
    read = [d async for d in cursor.limit(read_limit)]
    at = next((i for i, d in enumerate(read) if d["_id"] == last_id), None)
    if at is None or _lookup(read[at], sort_key) != key:
        return None
    after = read[at + 1:]
    if len(after) < limit + 1 and len(read) == read_limit:  # more rows may follow: not enough read
        return None
    return after[: limit + 1]


def _past(_id: Any, last_id: Any, descending: bool) -> bool:
    """Whether `_id` comes after the cursor's; an id of another type (a cursor made by hand)
    never does."""
    if type(_id) is not type(last_id):
        return False
    return _id < last_id if descending else _id > last_id


def _lookup(doc: dict[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
