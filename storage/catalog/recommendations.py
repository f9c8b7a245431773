"""Suggestions per profile, computed by server/catalog/rollups.py: one document per profile
holding its short ranked list, replaced whole on each run (never grown with `$push`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

INDEXES = {"recommendations": [IndexModel([("computed_ms", ASCENDING)], name="computed")]}


class RecommendationRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._recs = db.recommendations
        self._profiles = db.profiles

    async def save(self, profile_id: str, user_id: str, items: list[dict[str, Any]], computed_ms: int) -> None:
        doc = {"_id": profile_id, "user_id": user_id, "items": items, "computed_ms": computed_ms}
        await self._recs.replace_one({"_id": profile_id}, doc, upsert=True)

    async def get(self, profile_id: str) -> dict[str, Any] | None:
        return await self._recs.find_one({"_id": profile_id})

    async def drop_older_than(self, computed_ms: int) -> int:
        """Profiles that had no activity in the last run lose their stale lists."""
        return (await self._recs.delete_many({"computed_ms": {"$lt": computed_ms}})).deleted_count

    async def kids_profiles(self, profile_ids: Iterable[str]) -> set[str]:
        """Which of these profiles are kids profiles (read-only look at `profiles`, so the
        job can keep a kids profile's list within its rating)."""
        ids = list(profile_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 1000):
            batch = ids[start:start + 1000]
            async for doc in self._profiles.find({"_id": {"$in": batch}, "kids": True}, {"_id": 1}):
                found.add(str(doc["_id"]))
        return found
