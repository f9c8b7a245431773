"""The recommendation job's read of every title-progress row (storage/catalog/history.py):
every row once, in chunks of whole profiles, each an indexed range or equality on
`profile_id`, never one find over the whole collection (nx-27017 answers a find whole, in
one command, and held the store for minutes over a million rows)."""

from __future__ import annotations

import uuid

from pymongo import AsyncMongoClient

from storage.catalog.history import HistoryRepository
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
