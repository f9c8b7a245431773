"""Playback sessions: one per stream being watched; a session holds a stream slot while
its heartbeats keep coming."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from server.core.ids import new_id

# nx-27017 uses single-field indexes only (docs/catalog.md): without `user`, counting an
# account's streams at every start scans every session ever started.
INDEXES = {"playback_sessions": [IndexModel([("user_id", ASCENDING), ("ended", ASCENDING)], name="user_open"),
                                 IndexModel([("user_id", ASCENDING)], name="user")]}


class PlaybackRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._sessions = db.playback_sessions

    async def create(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {"_id": new_id(), **doc}
        await self._sessions.insert_one(doc)
        return doc

    async def get(self, user_id: str, session_id: str) -> dict[str, Any] | None:
        return await self._sessions.find_one({"_id": session_id, "user_id": user_id})

    async def active(self, user_id: str, alive_after_ms: int) -> list[dict[str, Any]]:
        cursor = self._sessions.find({"user_id": user_id, "ended": False, "heartbeat_ms": {"$gt": alive_after_ms}})
        return [d async for d in cursor.limit(100)]

    async def beat(self, user_id: str, session_id: str, at_ms: int, position: float, state: str) -> bool:
        result = await self._sessions.update_one(
            {"_id": session_id, "user_id": user_id, "ended": False},
            {"$set": {"heartbeat_ms": at_ms, "position": position, "state": state}},
        )
        return result.matched_count == 1

    async def end(self, user_id: str, session_id: str, at_ms: int) -> bool:
        result = await self._sessions.update_one(
            {"_id": session_id, "user_id": user_id, "ended": False}, {"$set": {"ended": True, "ended_ms": at_ms}}
        )
        return result.matched_count == 1
