"""Ids are strings everywhere, `_id` and references alike (docs/storage-compat.md: the
embedded server mishandles ObjectIds outside `_id` and in counts and aggregations)."""

from __future__ import annotations

import re

from bson import ObjectId

ID_PATTERN = "[0-9a-f]{24}"
_ID = re.compile(rf"^{ID_PATTERN}$")


def new_id() -> str:
    """Time-ordered like an ObjectId, stored as its hex string."""
    return str(ObjectId())


def valid_id(value: object) -> str | None:
    """The id if a client-supplied value can be one of ours, else None (so: not found)."""
    return value if isinstance(value, str) and _ID.match(value) else None
