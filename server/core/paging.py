"""Keyset (cursor) paging vocabulary shared by every layer: the page shape, the limits and
the opaque cursor.

A cursor is a URL-safe encoding of the last item's sort key and id, so pages stay stable
when items are inserted ahead of the reader; it is validated on the way in and a bad one
is the contract's 400, whichever layer decodes it. The query itself lives in
`storage.paging.paginate`.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from server.core.errors import BadRequest

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


# Both directions are pure functions of their text or values, kept: readers page through the
# same lists (the first pages of popular filters above all) again and again.
CURSORS_KEPT = 4096


@functools.lru_cache(maxsize=CURSORS_KEPT, typed=True)
def encode_cursor(key: Any, _id: Any) -> str:
    raw = json.dumps([_encode_value(key), _encode_value(_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@functools.lru_cache(maxsize=CURSORS_KEPT)
def decode_cursor(cursor: str) -> tuple[Any, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, _id = json.loads(raw)
        return _decode_value(key), _decode_value(_id)
    except (ValueError, TypeError):
        raise BadRequest("The cursor is not valid.", code="invalid_cursor",
                         details={"fields": {"cursor": "invalid"}}) from None
