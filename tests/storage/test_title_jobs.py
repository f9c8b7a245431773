"""The jobs' commands over every title (storage/catalog/titles.py) come in chunks: nx-27017
answers each command whole while every other waits, and at 100,000 titles a job's one
command over the catalog (40 s to read it for recommendations, longer to reset trending)
timed out every other reader, the read model's build among them, so the app never became
ready. Each test runs on the real store with chunks of 2 and checks both the answer and
that no command covers more than a chunk."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient

from server.core.clock import now, to_ms
from storage.catalog.episodes import INDEXES as EPISODE_INDEXES
from storage.catalog.episodes import EpisodeRepository
from storage.catalog.titles import FOREVER_MS, TitleRepository
from storage.catalog.titles import INDEXES as TITLE_INDEXES
from storage.mongo import ensure_indexes
from tests.helpers import Finds

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def watched(mongo_url: str) -> AsyncIterator[tuple[AsyncMongoClient, Finds, str]]:
    finds = Finds()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, event_listeners=[finds])
    name = f"titles_{uuid.uuid4().hex[:12]}"
    try:
        yield client, finds, name
    finally:
        await client.drop_database(name)
        await client.close()


def _title(n: int, **fields: object) -> dict[str, object]:
    return {"_id": f"t{n:02d}", "title": f"T{n}", "type": "movie", "genres": ["g"], "people": [], "popularity": n,
            "status": "published", "window_start_ms": 0, "window_end_ms": FOREVER_MS, "maturity_level": 13,
            "trending_score": 0, **fields}


def _title_finds(finds: Finds) -> list[dict[str, object]]:
    return [c for name, c in finds.commands if name == "find" and c.get("find") == "titles"]


async def test_the_recommenders_catalog_is_every_visible_title_read_in_chunks(watched) -> None:
    client, finds, name = watched
    at = to_ms(now())
    visible = [_title(n) for n in range(5)]
    hidden = [_title(10, status="draft"), _title(11, window_end_ms=at - 1), _title(12, window_start_ms=at + 60_000),
              _title(13, status="scheduled"), {k: v for k, v in _title(14).items() if k != "maturity_level"}]
    await client[name].titles.insert_many(visible + hidden)
    got = [d["_id"] async for d in TitleRepository(client[name]).catalog(at, chunk=2)]
    assert sorted(got) == [t["_id"] for t in visible] and len(got) == len(visible)
    reads = _title_finds(finds)
    assert len(reads) == 6 and all(c["limit"] == 2 and c.get("filter", {}) == {} for c in reads), reads


async def test_trending_scores_are_set_and_reset_in_chunks_and_batches(watched) -> None:
    client, finds, name = watched
    titles = [_title(n, trending_score=n % 3) for n in range(9)]  # 0, 1, 2, 0, 1, 2, ...
    await client[name].titles.insert_many(titles)
    scores = {"t00": 5, "t01": 1, "t04": 7, "t08": 2, "gone": 3}
    finds.commands.clear()
    changed = await TitleRepository(client[name]).set_trending(scores, chunk=2, batch=2)
    reads = _title_finds(finds)
    stored = {d["_id"]: d["trending_score"] async for d in client[name].titles.find({}, {"trending_score": 1})}
    assert stored == {t["_id"]: scores.get(str(t["_id"]), 0) for t in titles}
    assert changed == 5  # t00 and t04 set, t02, t05 and t07 reset; t01 and t08 kept their scores
    assert len(reads) == 5 and all(c["limit"] == 2 and c.get("filter", {}) == {} for c in reads), reads
    writes = [c for n, c in finds.commands if n == "update"]
    assert len(writes) == 3 and all(len(c["updates"]) <= 2 for c in writes), writes
    assert all(set(u["q"]) == {"_id"} for c in writes for u in c["updates"])


@pytest.mark.parametrize("collection", ["titles", "episodes"])
async def test_the_release_jobs_query_uses_an_index(watched, collection: str) -> None:
    """On nx-27017 the `scheduled` query scanned every title (1 s at 100,000, every 15 s)
    until a single-field index on `status` existed beside the compound one."""
    client, _, name = watched
    db = client[name]
    await ensure_indexes(db, {**TITLE_INDEXES, **EPISODE_INDEXES})
    await db[collection].insert_many([{"_id": f"x{n}", "status": "scheduled" if n % 2 else "published",
                                       "publish_at_ms": n, "title_id": "t", "season_number": 1, "number": n}
                                      for n in range(20)])
    found = await TitleRepository(db).due(10) if collection == "titles" else await EpisodeRepository(db).due(10)
    assert [d["_id"] for d in found] == ["x1", "x3", "x5", "x7", "x9"]
    if not str((await client.admin.command("buildInfo")).get("process", "")).startswith("nx"):
        return
    plan = await db.command("explain", {"find": collection, "filter": {"status": "scheduled",
                                                                        "publish_at_ms": {"$lte": 10}},
                                        "sort": {"publish_at_ms": 1}, "limit": 100})
    assert "USING INDEX" in str(plan["queryPlanner"]["winningPlan"]), plan["queryPlanner"]
