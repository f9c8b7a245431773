"""Titles (movies and series): one document each, with the numbers viewers sort by.

Episodes, seasons, reviews and history live in their own collections. Array fields
(`genres`, `categories`, `languages`, `search_keys`) are always queried with `$all`,
never with bare equality: on nx-27017 a bare `{"genres": "drama"}` against an indexed
array field matches nothing in `find` (tests/storage/test_catalog_indexes.py), while `$all` is
right on both servers and uses the multikey index on MongoDB.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from server.core.clock import now, to_ms
from server.core.ids import new_id, valid_id
from server.core.paging import PageResult
from storage.paging import paginate

JOB_CHUNK = 500  # titles a job reads per command: no command holds nx-27017 for long (0.2 s here)
JOB_BATCH = 100  # updates a job writes per command (nx-27017 spends about 2 ms on each)
FOREVER_MS = 253_402_300_799_000  # 9999-12-31: an open-ended availability window

# The field each viewer sort orders by; ties break on _id (storage.paging).
SORTS: dict[str, str] = {
    "popular": "popularity",
    "new": "published_ms",
    "rating": "rating_avg",
    "trending": "trending_score",
}

# What a title card needs: list endpoints never ship search keys or the full cast.
CARD_FIELDS = {
    "type": 1, "title": 1, "year": 1, "genres": 1, "maturity_rating": 1, "artwork": 1, "runtime_s": 1,
    "rating_sum": 1, "rating_count": 1, "rating_avg": 1, "popularity": 1, "published_ms": 1,
    "trending_score": 1, "synopsis": 1, "status": 1, "window_end_ms": 1, "playable": 1,
}

# What the in-process read model holds (server/catalog/read_model.py).
MODEL_FIELDS = {
    **CARD_FIELDS, "window_start_ms": 1, "maturity_level": 1, "categories": 1, "languages": 1, "search_keys": 1,
    "publish_at_ms": 1, "updated_ms": 1,
}

INDEXES = {
    "titles": [
        IndexModel([("status", ASCENDING), ("popularity", DESCENDING)], name="visible_popular"),
        IndexModel([("status", ASCENDING), ("published_ms", DESCENDING)], name="visible_new"),
        IndexModel([("status", ASCENDING), ("rating_avg", DESCENDING)], name="visible_rating"),
        IndexModel([("status", ASCENDING), ("trending_score", DESCENDING)], name="visible_trending"),
        IndexModel([("genres", ASCENDING), ("popularity", DESCENDING)], name="genre_popular"),
        # Multikey: `$all` of the query's keys uses it on MongoDB. (A text index over the keys
        # would let nx-27017 search through SQLite FTS too, but nx-27017 cannot re-create a
        # text index on a collection that has documents, so the server could not restart:
        # tests/storage/test_catalog_indexes.py.)
        IndexModel([("search_keys", ASCENDING)], name="search_keys"),
        IndexModel([("status", ASCENDING), ("publish_at_ms", ASCENDING)], name="scheduled"),
        # Without it nx-27017 scans every title for the release job's `scheduled` query (1 s at
        # 100,000 titles, every 15 s); with it, that query uses `scheduled` (3 ms).
        IndexModel([("status", ASCENDING)], name="status"),
        IndexModel([("created_at", ASCENDING)], name="created_at"),
        IndexModel([("updated_ms", ASCENDING)], name="updated_ms"),  # the read model's poll
    ],
    "title_views": [IndexModel([("day", ASCENDING)], name="day")],
}


def contains(value: str) -> dict[str, Any]:
    """Array membership in the one form both servers get right (see the module docstring)."""
    return {"$all": [value]}


def search_query(keys: list[str]) -> dict[str, Any]:
    """Titles having every key (each a normalized word prefix, server/catalog/text_search.py)."""
    return {"search_keys": {"$all": keys}}


def visible_query(now_ms: int, max_level: int) -> dict[str, Any]:
    """Published, inside its availability window, and within the viewer's maturity ceiling."""
    return {
        "status": "published",
        "window_start_ms": {"$lte": now_ms},
        "window_end_ms": {"$gt": now_ms},
        "maturity_level": {"$lte": max_level},
    }


def _visible(doc: dict[str, Any], now_ms: int) -> bool:
    """`visible_query(now_ms, any level)` asked of a document already read."""
    def num(field: str) -> int | float | None:
        value = doc.get(field)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    start, end = num("window_start_ms"), num("window_end_ms")
    return (doc.get("status") == "published" and start is not None and start <= now_ms
            and end is not None and end > now_ms and num("maturity_level") is not None)


class TitleRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._titles = db.titles
        self._views = db.title_views

    # --- writes by content managers ------------------------------------------------

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {"_id": new_id(), **doc}
        await self._titles.insert_one(doc)
        return doc

    async def update(self, title_id: str, changes: dict[str, Any], *, unset: Iterable[str] = (),
                     version: int | None = None, statuses: Iterable[str] | None = None,
                     minimum: dict[str, int] | None = None) -> dict[str, Any] | None:
        """Apply `changes`; None when the title is missing, or its version or status no
        longer matches what the caller read (optimistic concurrency)."""
        key = valid_id(title_id)
        if key is None:
            return None
        flt: dict[str, Any] = {"_id": key}
        if version is not None:
            flt["version"] = version
        if statuses is not None:
            flt["status"] = {"$in": list(statuses)}
        update: dict[str, Any] = {"$set": {**changes, "updated_ms": to_ms(now())}, "$inc": {"version": 1}}
        names = list(unset)
        if names:
            update["$unset"] = {name: "" for name in names}
        if minimum:
            update["$min"] = minimum
        return await self._titles.find_one_and_update(flt, update, return_document=ReturnDocument.AFTER)

    async def due(self, now_ms: int, limit: int = 100) -> list[dict[str, Any]]:
        query = {"status": "scheduled", "publish_at_ms": {"$lte": now_ms}}
        fields = {"title": 1, "publish_at_ms": 1, "type": 1, "published_ms": 1, "first_published_ms": 1}
        return [d async for d in self._titles.find(query, fields)
                .sort("publish_at_ms", ASCENDING).limit(limit)]

    async def publish_if_due(self, title_id: str, publish_at_ms: int, published_ms: int,
                             now_ms: int) -> dict[str, Any] | None:
        """Scheduled → published, for exactly one caller even with several processes."""
        return await self._titles.find_one_and_update(
            {"_id": title_id, "status": "scheduled", "publish_at_ms": publish_at_ms},
            {"$set": {"status": "published", "published_ms": published_ms, "updated_ms": now_ms},
             "$min": {"first_published_ms": now_ms}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def count_using(self, field: str, slug: str) -> int:
        return await self._titles.count_documents({field: contains(slug)})

    # --- reads ---------------------------------------------------------------------

    async def get(self, title_id: str) -> dict[str, Any] | None:
        key = valid_id(title_id)
        return None if key is None else await self._titles.find_one({"_id": key})

    async def get_visible(self, title_id: str, now_ms: int, max_level: int) -> dict[str, Any] | None:
        key = valid_id(title_id)
        if key is None:
            return None
        return await self._titles.find_one({"_id": key, **visible_query(now_ms, max_level)}, {"search_keys": 0})

    async def browse(self, now_ms: int, max_level: int, *, kind: str | None = None, genre: str | None = None,
                     category: str | None = None, language: str | None = None, keys: list[str] | None = None,
                     sort: str = "popular", limit: int = 20, cursor: str | None = None) -> PageResult:
        query = visible_query(now_ms, max_level)
        if kind:
            query["type"] = kind
        if keys:
            query.update(search_query(keys))
        if genre:
            query["genres"] = contains(genre)
        if category:
            query["categories"] = contains(category)
        if language:
            query["languages"] = contains(language)
        return await paginate(self._titles, query, sort_key=SORTS[sort], limit=limit, cursor=cursor,
                              projection=CARD_FIELDS)

    async def top(self, now_ms: int, max_level: int, *, sort: str, limit: int, genre: str | None = None,
                  exclude: Iterable[str] = ()) -> list[dict[str, Any]]:
        query = visible_query(now_ms, max_level)
        if genre:
            query["genres"] = contains(genre)
        excluded = list(exclude)
        if excluded:
            query["_id"] = {"$nin": excluded}
        if sort == "trending":
            query["trending_score"] = {"$gt": 0}
        key = SORTS[sort]
        cursor = self._titles.find(query, CARD_FIELDS).sort([(key, DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [d async for d in cursor]

    async def visible_by_ids(self, ids: Iterable[str], now_ms: int, max_level: int) -> dict[str, dict[str, Any]]:
        keys = [k for k in (valid_id(i) for i in ids) if k]
        if not keys:
            return {}
        query = {"_id": {"$in": keys}, **visible_query(now_ms, max_level)}
        return {d["_id"]: d async for d in self._titles.find(query, CARD_FIELDS)}

    async def by_ids(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Cards of any status: a viewer's own history may name a title since archived."""
        keys = [k for k in (valid_id(i) for i in ids) if k]
        if not keys:
            return {}
        return {d["_id"]: d async for d in self._titles.find({"_id": {"$in": keys}}, CARD_FIELDS)}

    async def model_chunk(self, skip: int, limit: int) -> list[dict[str, Any]]:
        """Titles in `_id` order from position `skip`: the read model is built a chunk at a time."""
        return await self._at_position(MODEL_FIELDS, skip, limit)

    async def _at_position(self, fields: dict[str, Any], skip: int, limit: int) -> list[dict[str, Any]]:
        """A chunk of every title in `_id` order. A position, not `_id > last`: nx-27017 reads
        the whole collection into Python for any range on `_id` (a 100,000-title build was 50
        such scans), while a sort on `_id` with a skip and a limit is a walk of its `_id`
        index, there and on MongoDB."""
        return [d async for d in self._titles.find({}, fields).sort("_id", ASCENDING).skip(skip).limit(limit)]

    async def model_changed_since(self, since_ms: int) -> list[dict[str, Any]]:
        return [d async for d in self._titles.find({"updated_ms": {"$gte": since_ms}}, MODEL_FIELDS)]

    async def model_by_ids(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = [k for k in (valid_id(i) for i in ids) if k]
        if not keys:
            return {}
        return {str(d["_id"]): d async for d in self._titles.find({"_id": {"$in": keys}}, MODEL_FIELDS)}

    async def admin_page(self, *, status: str | None, kind: str | None, keys: list[str] | None, limit: int,
                         cursor: str | None) -> PageResult:
        query: dict[str, Any] = {}
        if status:
            query["status"] = status
        if kind:
            query["type"] = kind
        if keys:
            query.update(search_query(keys))
        return await paginate(self._titles, query, sort_key="created_at", limit=limit, cursor=cursor,
                              projection={"search_keys": 0})

    async def catalog(self, now_ms: int, chunk: int = JOB_CHUNK) -> AsyncIterator[dict[str, Any]]:
        """Every currently published title with what the recommender reads, a chunk of titles
        by position at a time, visibility checked here: as one find, nx-27017 held the store
        for 40 s at 100,000 titles while every other command timed out."""
        fields = {"title": 1, "genres": 1, "people": 1, "popularity": 1, "maturity_level": 1, "type": 1,
                  "status": 1, "window_start_ms": 1, "window_end_ms": 1}
        read = 0
        while True:
            docs = await self._at_position(fields, read, chunk)
            for doc in docs:
                if _visible(doc, now_ms):
                    yield doc
            if len(docs) < chunk:
                return
            read += len(docs)

    # --- numbers written by viewers' activity ----------------------------------------

    async def add_rating(self, title_id: str, delta_sum: int, delta_count: int) -> None:
        """Move the title's rating by one review's change with `$inc`, never from a read of
        the reviews. The average is then set only if no other change landed in between,
        so concurrent reviewers cannot leave a stale average behind: the last writer's
        condition is the one that holds."""
        after = await self._titles.find_one_and_update(
            {"_id": title_id}, {"$inc": {"rating_sum": delta_sum, "rating_count": delta_count},
                                "$set": {"updated_ms": to_ms(now())}},
            projection={"rating_sum": 1, "rating_count": 1}, return_document=ReturnDocument.AFTER,
        )
        if after is None:
            return
        total, count = int(after.get("rating_sum", 0)), int(after.get("rating_count", 0))
        await self._titles.update_one(
            {"_id": title_id, "rating_sum": total, "rating_count": count},
            {"$set": {"rating_avg": round(total / count, 4) if count > 0 else 0.0, "updated_ms": to_ms(now())}},
        )

    async def record_view(self, title_id: str, day: str) -> None:
        """A profile started this title for the first time: all-time and per-day counters."""
        await self._titles.update_one({"_id": title_id},
                                      {"$inc": {"popularity": 1}, "$set": {"updated_ms": to_ms(now())}})
        await self._views.update_one(
            {"_id": f"{title_id}:{day}"},
            {"$inc": {"views": 1}, "$setOnInsert": {"title_id": title_id, "day": day}},
            upsert=True,
        )

    async def views_by_title(self, days: list[str]) -> dict[str, int]:
        pipeline = [{"$match": {"day": {"$in": days}}}, {"$group": {"_id": "$title_id", "views": {"$sum": "$views"}}}]
        return {str(row["_id"]): int(row["views"]) async for row in await self._views.aggregate(pipeline)}

    async def set_trending(self, scores: dict[str, int], *, chunk: int = JOB_CHUNK, batch: int = JOB_BATCH) -> int:
        """Give every title its score (0 when absent from `scores`); returns how many changed.
        One walk of the titles by position, writing only the scores that moved, `batch` at a
        time: as one bulk write and one `update_many` (whose `trending_score > 0` nx-27017
        evaluates in Python over every title), it held the store for minutes at 100,000 titles."""
        changed = 0
        pending: list[UpdateOne] = []
        read = 0
        while True:
            docs = await self._at_position({"trending_score": 1}, read, chunk)
            for doc in docs:
                score = scores.get(str(doc["_id"]), 0)
                if doc.get("trending_score", 0) != score:
                    pending.append(UpdateOne({"_id": doc["_id"]},
                                             {"$set": {"trending_score": score, "updated_ms": to_ms(now())}}))
            while len(pending) >= batch or (pending and len(docs) < chunk):
                changed += (await self._titles.bulk_write(pending[:batch], ordered=False)).modified_count
                del pending[:batch]
            if len(docs) < chunk:
                return changed
            read += len(docs)
