"""Staff announcements, kept until they expire so that apps connecting later get them."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from server.core.ids import new_id

INDEXES = {"announcements": [IndexModel([("expires_ms", ASCENDING)], name="active")]}


class AnnouncementRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._announcements = db.announcements

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {"_id": new_id(), **doc}
        await self._announcements.insert_one(doc)
        return doc

    async def active(self, now_ms: int, limit: int) -> list[dict[str, Any]]:
        """Those not yet expired, newest first."""
        cursor = self._announcements.find({"expires_ms": {"$gt": now_ms}}).sort(
            [("created_ms", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [doc async for doc in cursor]
