"""Social sign-in identities linked to accounts: one document per (provider, subject)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

INDEXES = {
    "identities": [
        IndexModel([("provider", ASCENDING), ("subject", ASCENDING)], unique=True, name="provider_subject"),
        IndexModel([("user_id", ASCENDING), ("provider", ASCENDING)], unique=True, name="user_provider"),
    ],
}


class IdentityTaken(Exception):
    pass


class IdentityRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._identities = db.identities

    async def find(self, provider: str, subject: str) -> dict[str, Any] | None:
        return await self._identities.find_one({"provider": provider, "subject": subject})

    async def for_user(self, user_id: str) -> list[dict[str, Any]]:
        return [doc async for doc in self._identities.find({"user_id": user_id}).limit(20)]

    async def link(self, doc: dict[str, Any]) -> None:
        try:
            await self._identities.insert_one(doc)
        except DuplicateKeyError:
            raise IdentityTaken(doc["provider"]) from None

    async def unlink(self, user_id: str, provider: str) -> bool:
        result = await self._identities.delete_one({"user_id": user_id, "provider": provider})
        return result.deleted_count == 1
