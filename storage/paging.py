"""The one pagination helper: stable keyset (cursor) paging over (sort key, _id).

A cursor is an opaque, URL-safe encoding of the last item's sort key and id, so pages stay
stable when items are inserted ahead of the reader; it is validated on the way in.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from server.errors import BadRequest

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class PageResult:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _encode_value(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return {"$oid": str(value)}
    if isinstance(value, dt.datetime):
        return {"$date": value.isoformat()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$oid"} and ObjectId.is_valid(value["$oid"]):
        return ObjectId(value["$oid"])
    if isinstance(value, dict) and set(value) == {"$date"}:
        return dt.datetime.fromisoformat(value["$date"])
    if isinstance(value, (str, int, float)) or value is None:
        return value
    raise ValueError("bad cursor value")


def encode_cursor(key: Any, _id: Any) -> str:
    raw = json.dumps([_encode_value(key), _encode_value(_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, _id = json.loads(raw)
        return _decode_value(key), _decode_value(_id)
    except (ValueError, TypeError):
        raise BadRequest("The cursor is not valid.", code="invalid_cursor",
                         details={"fields": {"cursor": "invalid"}}) from None


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
