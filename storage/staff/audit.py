"""The audit log: who did what to what, when. Append-only."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from server.core.paging import PageResult
from storage.paging import paginate

INDEXES = {
    "audit": [
        IndexModel([("at", DESCENDING)], name="recent"),
        IndexModel([("actor_id", ASCENDING), ("at", DESCENDING)], name="by_actor"),
        IndexModel([("target_id", ASCENDING), ("at", DESCENDING)], name="by_target"),
    ],
}


class AuditRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._audit = db.audit

    async def append(self, entry: dict[str, Any]) -> None:
        await self._audit.insert_one(entry)

    async def page(self, actor_id: str | None, target_id: str | None, limit: int, cursor: str | None) -> PageResult:
        query: dict[str, Any] = {}
        if actor_id:
            query["actor_id"] = actor_id
        if target_id:
            query["target_id"] = target_id
        return await paginate(self._audit, query, sort_key="at", limit=limit, cursor=cursor)
