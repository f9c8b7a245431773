"""Episodes of a series, one document each, ordered by `order_key` (season, then number),
so one index serves "a season's episodes", "all episodes" and "the next episode"."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from server.core.clock import now, to_ms
from server.core.ids import new_id, valid_id
from server.core.paging import PageResult
from storage.paging import paginate

INDEXES = {
    "episodes": [
        IndexModel([("title_id", ASCENDING), ("season_number", ASCENDING), ("number", ASCENDING)], unique=True,
                   name="title_season_number"),
        IndexModel([("title_id", ASCENDING)], name="title"),  # single-field: see storage/catalog/history.py
        IndexModel([("status", ASCENDING), ("publish_at_ms", ASCENDING)], name="scheduled"),
        IndexModel([("status", ASCENDING)], name="status"),  # see storage/catalog/titles.py
    ],
}

SEASON_STRIDE = 10_000  # order_key = season * stride + number; an episode number stays below it


def order_key(season: int, number: int) -> int:
    return season * SEASON_STRIDE + number


class EpisodeExists(Exception):
    pass


class EpisodeRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._episodes = db.episodes

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {"_id": new_id(), **doc, "order_key": order_key(doc["season_number"], doc["number"])}
        try:
            await self._episodes.insert_one(doc)
        except DuplicateKeyError:
            raise EpisodeExists(doc["number"]) from None
        return doc

    async def get(self, episode_id: str) -> dict[str, Any] | None:
        key = valid_id(episode_id)
        return None if key is None else await self._episodes.find_one({"_id": key})

    async def update(self, episode_id: str, changes: dict[str, Any], *, unset: Iterable[str] = ()) -> dict | None:
        key = valid_id(episode_id)
        if key is None:
            return None
        update: dict[str, Any] = {"$set": {**changes, "updated_ms": to_ms(now())}}
        names = list(unset)
        if names:
            update["$unset"] = {name: "" for name in names}
        # update_one, not find_one_and_update: on nx-27017 the latter answers None instead of
        # raising when the change collides with the unique (title, season, number) index
        # (tests/storage/test_catalog_indexes.py).
        try:
            result = await self._episodes.update_one({"_id": key}, update)
        except DuplicateKeyError:
            raise EpisodeExists(changes.get("number")) from None
        return await self._episodes.find_one({"_id": key}) if result.matched_count else None

    async def delete(self, episode_id: str) -> dict[str, Any] | None:
        key = valid_id(episode_id)
        return None if key is None else await self._episodes.find_one_and_delete({"_id": key})

    async def page(self, title_id: str, *, season: int | None, published_only: bool, limit: int,
                   cursor: str | None) -> PageResult:
        query: dict[str, Any] = {"title_id": title_id}
        if season is not None:
            query["season_number"] = season
        if published_only:
            query["status"] = "published"
        return await paginate(self._episodes, query, sort_key="order_key", limit=limit, cursor=cursor,
                              descending=False)

    async def next_after(self, title_id: str, key: int) -> dict[str, Any] | None:
        query = {"title_id": title_id, "status": "published", "order_key": {"$gt": key}}
        found = [d async for d in self._episodes.find(query).sort("order_key", ASCENDING).limit(1)]
        return found[0] if found else None

    async def first(self, title_id: str) -> dict[str, Any] | None:
        return await self.next_after(title_id, -1)

    async def by_ids(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = [k for k in (valid_id(i) for i in ids) if k]
        if not keys:
            return {}
        return {d["_id"]: d async for d in self._episodes.find({"_id": {"$in": keys}})}

    async def season_counts(self, title_id: str, *, published_only: bool) -> dict[int, int]:
        match: dict[str, Any] = {"title_id": title_id}
        if published_only:
            match["status"] = "published"
        pipeline = [{"$match": match}, {"$group": {"_id": "$season_number", "n": {"$sum": 1}}}]
        return {int(row["_id"]): int(row["n"]) async for row in await self._episodes.aggregate(pipeline)}

    async def count_in_season(self, title_id: str, season: int) -> int:
        return await self._episodes.count_documents({"title_id": title_id, "season_number": season})

    async def due(self, now_ms: int, limit: int = 200) -> list[dict[str, Any]]:
        query = {"status": "scheduled", "publish_at_ms": {"$lte": now_ms}}
        return [d async for d in self._episodes.find(query).sort("publish_at_ms", ASCENDING).limit(limit)]

    async def publish_if_due(self, episode_id: str, publish_at_ms: int, now_ms: int) -> dict[str, Any] | None:
        return await self._episodes.find_one_and_update(
            {"_id": episode_id, "status": "scheduled", "publish_at_ms": publish_at_ms},
            {"$set": {"status": "published", "published_ms": now_ms, "updated_ms": now_ms}},
            return_document=ReturnDocument.AFTER,
        )
