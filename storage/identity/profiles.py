"""Viewing profiles: a handful per account, in their own collection."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from server.core.ids import new_id, valid_id

INDEXES = {"profiles": [IndexModel([("user_id", ASCENDING), ("created_at", ASCENDING)], name="user_profiles")]}


class ProfileRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._profiles = db.profiles

    async def for_user(self, user_id: str) -> list[dict[str, Any]]:
        # `$eq`: nx-27017 compiles it to plain equality, which the user_profiles index serves.
        cursor = self._profiles.find({"user_id": {"$eq": user_id}}).sort("created_at", ASCENDING)
        return [doc async for doc in cursor.limit(50)]

    async def count(self, user_id: str) -> int:
        return await self._profiles.count_documents({"user_id": user_id})

    async def get(self, user_id: str, profile_id: str) -> dict[str, Any] | None:
        key = valid_id(profile_id)
        return None if key is None else await self._profiles.find_one({"_id": key, "user_id": user_id})

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {"_id": new_id(), **doc}
        await self._profiles.insert_one(doc)
        return doc

    async def update(self, user_id: str, profile_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        key = valid_id(profile_id)
        if key is None:
            return None
        return await self._profiles.find_one_and_update(
            {"_id": key, "user_id": user_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )

    async def delete(self, user_id: str, profile_id: str) -> bool:
        key = valid_id(profile_id)
        if key is None:
            return False
        return (await self._profiles.delete_one({"_id": key, "user_id": user_id})).deleted_count == 1
