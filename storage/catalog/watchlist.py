"""My list: one document per profile and title (`<profile>:<title>`), so adding twice is
one document and removing is one delete."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from server.core.clock import to_ms
from server.core.paging import PageResult
from storage import scan
from storage.paging import paginate

INDEXES = {"watchlist": [IndexModel([("profile_id", ASCENDING)], name="profile"),  # see storage/catalog/history.py
                         IndexModel([("title_id", ASCENDING)], name="title")]}


class WatchlistRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._watchlist = db.watchlist

    async def add(self, user_id: str, profile_id: str, title_id: str, at: dt.datetime) -> None:
        await self._watchlist.update_one(
            {"_id": f"{profile_id}:{title_id}"},
            {"$setOnInsert": {"user_id": user_id, "profile_id": profile_id, "title_id": title_id,
                              "created_at": at, "added_ms": to_ms(at)}},
            upsert=True,
        )

    async def remove(self, profile_id: str, title_id: str) -> bool:
        return (await self._watchlist.delete_one({"_id": f"{profile_id}:{title_id}"})).deleted_count == 1

    async def page(self, profile_id: str, limit: int, cursor: str | None) -> PageResult:
        return await paginate(self._watchlist, {"profile_id": {"$eq": profile_id}}, sort_key="added_ms", limit=limit,
                              cursor=cursor)

    async def accounts_following(self, title_id: str) -> AsyncIterator[str]:
        """Accounts with the title on a profile's list (release notifications)."""
        async for doc in self._watchlist.find({"title_id": title_id}, {"user_id": 1}).batch_size(5000):
            if doc.get("user_id"):
                yield doc["user_id"]

    async def all_rows(self, chunk: int = scan.CHUNK) -> AsyncIterator[dict[str, Any]]:
        """Every row, for the recommendation job: in chunks of whole profiles (storage/scan.py)."""
        async for doc in scan.by_key(self._watchlist, "profile_id", {"user_id": 1, "title_id": 1}, chunk):
            yield doc
