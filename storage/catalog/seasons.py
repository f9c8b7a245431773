"""Seasons of a series: a handful per title, in their own collection, unique by number."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from server.core.clock import now, to_ms
from server.core.ids import new_id

INDEXES = {
    "seasons": [
        IndexModel([("title_id", ASCENDING), ("number", ASCENDING)], unique=True, name="title_season"),
        IndexModel([("title_id", ASCENDING)], name="title"),  # single-field: see storage/catalog/history.py
    ],
}


class SeasonExists(Exception):
    pass


class SeasonRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._seasons = db.seasons

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {"_id": new_id(), **doc}
        try:
            await self._seasons.insert_one(doc)
        except DuplicateKeyError:
            raise SeasonExists(doc.get("number")) from None
        return doc

    async def get(self, title_id: str, number: int) -> dict[str, Any] | None:
        return await self._seasons.find_one({"title_id": title_id, "number": number})

    async def for_title(self, title_id: str) -> list[dict[str, Any]]:
        return [d async for d in self._seasons.find({"title_id": title_id}).sort("number", ASCENDING).limit(500)]

    async def update(self, title_id: str, number: int, changes: dict[str, Any]) -> dict[str, Any] | None:
        return await self._seasons.find_one_and_update(
            {"title_id": title_id, "number": number}, {"$set": {**changes, "updated_ms": to_ms(now())}},
            return_document=ReturnDocument.AFTER,
        )

    async def delete(self, title_id: str, number: int) -> bool:
        return (await self._seasons.delete_one({"title_id": title_id, "number": number})).deleted_count == 1
