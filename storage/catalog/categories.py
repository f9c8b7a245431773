"""Categories: genres (a title's `genres` holds their slugs) and curated collections
(a title's `categories`). A few dozen documents, read whole."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from server.core.clock import now, to_ms
from server.core.ids import new_id, valid_id

INDEXES = {
    "categories": [
        IndexModel([("slug", ASCENDING)], unique=True, name="slug_unique"),
        IndexModel([("kind", ASCENDING), ("position", ASCENDING), ("slug", ASCENDING)], name="kind_position_slug"),
    ],
}


class SlugTaken(Exception):
    pass


class CategoryRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._categories = db.categories

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {"_id": new_id(), **doc}
        try:
            await self._categories.insert_one(doc)
        except DuplicateKeyError:
            raise SlugTaken(doc.get("slug")) from None
        return doc

    async def get(self, category_id: str) -> dict[str, Any] | None:
        key = valid_id(category_id)
        return None if key is None else await self._categories.find_one({"_id": key})

    async def all(self, kind: str | None = None) -> list[dict[str, Any]]:
        query = {"kind": kind} if kind else {}
        cursor = self._categories.find(query).sort([("kind", ASCENDING), ("position", ASCENDING), ("slug", ASCENDING)])
        return [d async for d in cursor.limit(1000)]

    async def existing_slugs(self, slugs: Iterable[str], kind: str) -> set[str]:
        wanted = list(set(slugs))
        if not wanted:
            return set()
        return {d["slug"] async for d in self._categories.find({"slug": {"$in": wanted}, "kind": kind}, {"slug": 1})}

    async def update(self, category_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        key = valid_id(category_id)
        if key is None:
            return None
        return await self._categories.find_one_and_update(
            {"_id": key}, {"$set": {**changes, "updated_ms": to_ms(now())}}, return_document=ReturnDocument.AFTER
        )

    async def delete(self, category_id: str) -> dict[str, Any] | None:
        key = valid_id(category_id)
        return None if key is None else await self._categories.find_one_and_delete({"_id": key})
