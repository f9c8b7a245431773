"""Outgoing messages (email now; push later) waiting for their delivery integration."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from server.core.paging import PageResult
from storage.paging import paginate

INDEXES = {
    "outbox": [
        IndexModel([("status", ASCENDING), ("created_at", ASCENDING)], name="pending"),
        IndexModel([("to", ASCENDING), ("created_at", DESCENDING)], name="by_recipient"),
    ],
}


class OutboxRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._outbox = db.outbox

    async def enqueue(self, doc: dict[str, Any]) -> None:
        await self._outbox.insert_one(doc)

    async def drop_field(self, name: str) -> int:
        result = await self._outbox.update_many({name: {"$exists": True}}, {"$unset": {name: ""}})
        return result.modified_count

    async def page(self, to: str | None, limit: int, cursor: str | None) -> PageResult:
        query = {"to": to} if to else {}
        return await paginate(self._outbox, query, sort_key="created_at", limit=limit, cursor=cursor)
