"""The recommendation job's read of every title-progress row (storage/catalog/history.py):
every row once, in chunks of whole profiles, each an indexed range or equality on
`profile_id`, never one find over the whole collection (nx-27017 answers a find whole, in
one command, and held the store for minutes over a million rows)."""

from __future__ import annotations

import uuid

from pymongo import AsyncMongoClient

from storage.catalog.history import HistoryRepository
from storage.catalog.reviews import ReviewRepository
from storage.catalog.watchlist import WatchlistRepository
from tests.helpers import Finds


async def test_every_row_once_in_chunks_of_whole_profiles(mongo_url: str) -> None:
    finds = Finds()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, event_listeners=[finds])
    name = f"progress_{uuid.uuid4().hex[:12]}"
    try:
        rows = [{"_id": f"p{p}:t{t}", "profile_id": f"p{p}", "user_id": "u", "title_id": f"t{t}", "state": "watching",
                 "last_watched_ms": t} for p in range(6) for t in range(p + 1)]  # 1 to 6 rows a profile
        await client[name].title_progress.insert_many(rows)
        got = [d["_id"] async for d in HistoryRepository(client[name]).all_title_progress(chunk=4)]
        assert sorted(got) == sorted(r["_id"] for r in rows) and len(got) == len(rows)
        assert len(finds.filters) > 3
        assert all(set(f) == {"profile_id"} and set(f["profile_id"]) <= {"$gt", "$eq"} for f in finds.filters), \
            finds.filters
    finally:
        await client.drop_database(name)
        await client.close()


async def test_watchlist_and_ratings_every_row_once_in_chunks_of_whole_keys(mongo_url: str) -> None:
    """The job's other two whole-collection reads: the watchlist in chunks of whole profiles,
    visible ratings in chunks of whole titles."""
    finds = Finds()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, event_listeners=[finds])
    name = f"activity_{uuid.uuid4().hex[:12]}"
    try:
        db = client[name]
        listed = [{"_id": f"p{p}:t{t}", "profile_id": f"p{p}", "user_id": "u", "title_id": f"t{t}"}
                  for p in range(5) for t in range(p + 1)]
        rated = [{"_id": f"r{p}{t}", "profile_id": f"p{p}", "user_id": "u", "title_id": f"t{t}", "rating": 4,
                  "status": "hidden" if p == t else "visible"} for p in range(5) for t in range(5 - p)]
        await db.watchlist.insert_many(listed)
        await db.reviews.insert_many(rated)
        finds.filters.clear()
        got = [d["_id"] async for d in WatchlistRepository(db).all_rows(chunk=4)]
        assert sorted(got) == sorted(r["_id"] for r in listed) and len(got) == len(listed)
        got = [d["_id"] async for d in ReviewRepository(db).all_ratings(chunk=4)]
        visible = [r["_id"] for r in rated if r["status"] == "visible"]
        assert sorted(got) == sorted(visible) and len(got) == len(visible)
        scans = [c for n, c in finds.commands if n == "find" and c["find"] in ("watchlist", "reviews")]
        assert len(scans) > 6
        assert all(len(c["filter"]) == 1 and (c.get("limit") == 4 or "$eq" in next(iter(c["filter"].values())))
                   for c in scans), scans
    finally:
        await client.drop_database(name)
        await client.close()
