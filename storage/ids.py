"""Opaque string ids at the edge, ObjectIds inside: one conversion, used by every repository."""

from __future__ import annotations

from bson import ObjectId


def oid(value: str | ObjectId | None) -> ObjectId | None:
    """The ObjectId for a client-supplied id, or None if it cannot be one (so: not found)."""
    if isinstance(value, ObjectId):
        return value
    if isinstance(value, str) and ObjectId.is_valid(value) and len(value) == 24:
        return ObjectId(value)
    return None


def sid(value: ObjectId | str) -> str:
    return str(value)
