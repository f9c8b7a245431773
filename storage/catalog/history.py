"""Watch history: progress per profile and content (`history`), and per profile and title
(`title_progress`, what "continue watching" reads). Both are keyed by natural string ids
(`<profile>:<content>`), so a heartbeat is one idempotent upsert each, never a growing
array."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from server.core.paging import PageResult
from storage import scan
from storage.paging import paginate

# One single-field index on the selective key: every read is one profile's rows, sorted on
# (last_watched_ms, _id), which no index without _id can order anyway (storage-compat rule
# 10), and nx-27017 only uses single-field indexes (tests/storage/test_catalog_indexes.py).
# Equality is written `{"$eq": v}`: nx-27017 compiles a bare equality to a form no index
# serves, and `$eq` to plain equality (docs/storage-compat.md).
INDEXES = {
    "history": [IndexModel([("profile_id", ASCENDING)], name="profile")],
    "title_progress": [IndexModel([("profile_id", ASCENDING)], name="profile"),
                       IndexModel([("title_id", ASCENDING)], name="title")],
}

ACTIVE_STATES = ("watching", "up_next")  # a title in one of these belongs in "continue watching"


class HistoryRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._history = db.history
        self._progress = db.title_progress

    async def write_content(self, profile_id: str, content_id: str, fields: dict[str, Any], *,
                            created: dict[str, Any], finished_ms: int | None) -> None:
        update: dict[str, Any] = {"$set": fields, "$setOnInsert": created}
        if finished_ms is not None:
            update["$max"] = {"finished_ms": finished_ms}
        await self._history.update_one({"_id": f"{profile_id}:{content_id}"}, update, upsert=True)

    async def write_title(self, profile_id: str, title_id: str, fields: dict[str, Any], *,
                          created: dict[str, Any]) -> bool:
        """Upsert the title-level progress; True when this is the profile's first start of it."""
        result = await self._progress.update_one(
            {"_id": f"{profile_id}:{title_id}"}, {"$set": fields, "$setOnInsert": created}, upsert=True
        )
        return result.upserted_id is not None

    async def content(self, profile_id: str, content_id: str) -> dict[str, Any] | None:
        return await self._history.find_one({"_id": f"{profile_id}:{content_id}"})

    async def contents(self, profile_id: str, content_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = [f"{profile_id}:{c}" for c in content_ids]
        if not keys:
            return {}
        return {d["content_id"]: d async for d in self._history.find({"_id": {"$in": keys}})}

    async def page(self, profile_id: str, limit: int, cursor: str | None) -> PageResult:
        return await paginate(self._history, {"profile_id": {"$eq": profile_id}}, sort_key="last_watched_ms",
                              limit=limit, cursor=cursor)

    async def in_progress(self, profile_id: str, limit: int) -> list[dict[str, Any]]:
        query = {"profile_id": {"$eq": profile_id}, "state": {"$in": list(ACTIVE_STATES)}}
        cursor = self._progress.find(query).sort([("last_watched_ms", DESCENDING), ("_id", DESCENDING)])
        return [d async for d in cursor.limit(limit)]

    async def title_rows(self, profile_id: str, limit: int = 500) -> list[dict[str, Any]]:
        """The profile's per-title progress, newest first: one read serves continue
        watching, started and finished (the home page)."""
        cursor = self._progress.find({"profile_id": {"$eq": profile_id}})
        return [d async for d in cursor.sort([("last_watched_ms", DESCENDING), ("_id", DESCENDING)]).limit(limit)]

    async def finished_titles(self, profile_id: str, title_ids: Iterable[str]) -> set[str]:
        keys = [f"{profile_id}:{t}" for t in title_ids]
        if not keys:
            return set()
        query = {"_id": {"$in": keys}, "state": "finished"}
        return {d["title_id"] async for d in self._progress.find(query, {"title_id": 1})}

    async def started_titles(self, profile_id: str, limit: int = 500) -> list[dict[str, Any]]:
        cursor = self._progress.find({"profile_id": {"$eq": profile_id}}, {"title_id": 1, "state": 1})
        return [d async for d in cursor.sort("last_watched_ms", DESCENDING).limit(limit)]

    async def accounts_watching(self, title_id: str, since_ms: int = 0) -> AsyncIterator[str]:
        """Accounts with any profile that watched this title since `since_ms` (release notifications)."""
        query = {"title_id": title_id, "last_watched_ms": {"$gte": since_ms}}
        async for doc in self._progress.find(query, {"user_id": 1}).batch_size(5000):
            if doc.get("user_id"):
                yield doc["user_id"]

    async def all_title_progress(self, chunk: int = 5000) -> AsyncIterator[dict[str, Any]]:
        """Every (profile, title) pair, for the recommendation job, a chunk of whole profiles
        at a time in `profile_id` order (a range on its index). Not one find: nx-27017 answers
        a find whole in one command, so reading a million rows held the store for minutes
        while every other read timed out."""
        fields = {"profile_id": 1, "user_id": 1, "title_id": 1, "state": 1, "last_watched_ms": 1}
        async for doc in scan.by_key(self._progress, "profile_id", fields, chunk):
            yield doc
