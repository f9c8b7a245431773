"""Reviews: one document per profile and title (a unique index makes the second one a
conflict, whatever the timing), listed per title newest first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from server.core.ids import new_id, valid_id
from server.core.paging import PageResult
from storage import scan
from storage.paging import paginate

INDEXES = {
    "reviews": [
        IndexModel([("profile_id", ASCENDING), ("title_id", ASCENDING)], unique=True, name="one_per_profile"),
        IndexModel([("title_id", ASCENDING)], name="title"),  # single-field: see storage/catalog/history.py
    ],
}


class ReviewExists(Exception):
    pass


class ReviewRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._reviews = db.reviews

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {"_id": new_id(), **doc}
        try:
            await self._reviews.insert_one(doc)
        except DuplicateKeyError:
            raise ReviewExists() from None
        return doc

    async def get(self, review_id: str) -> dict[str, Any] | None:
        key = valid_id(review_id)
        return None if key is None else await self._reviews.find_one({"_id": key})

    async def update_if(self, review_id: str, expect: dict[str, Any], changes: dict[str, Any]) -> dict | None:
        """Change the review only if it still has the `expect`ed values, so each change of
        rating or status is applied to the title's aggregate exactly once."""
        return await self._reviews.find_one_and_update(
            {"_id": review_id, **expect}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )

    async def delete(self, review_id: str) -> dict[str, Any] | None:
        """The deleted review for the one caller that deleted it, else None."""
        return await self._reviews.find_one_and_delete({"_id": review_id})

    async def page(self, title_id: str, limit: int, cursor: str | None) -> PageResult:
        return await paginate(self._reviews, {"title_id": {"$eq": title_id}, "status": "visible"},
                              sort_key="created_at", limit=limit, cursor=cursor)

    async def all_ratings(self, chunk: int = scan.CHUNK) -> AsyncIterator[dict[str, Any]]:
        """Every visible review's rating, for the recommendation job: in chunks of whole
        titles on the single-field `title_id` index (storage/scan.py), the status checked here
        so the range stays the whole filter."""
        fields = {"profile_id": 1, "user_id": 1, "rating": 1, "status": 1}
        async for doc in scan.by_key(self._reviews, "title_id", fields, chunk):
            if doc.get("status") == "visible":
                yield doc
