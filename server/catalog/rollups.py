"""The catalog's roll-ups, recomputed in the background from what viewers did.

Trending: each title's first-time views over the last few days, from the per-day counters
that history writes, stored on the title so the trending row is one indexed sort.

Recommendations: read every profile's activity (title progress, watchlist, ratings), fit
the co-watch model once (`server.catalog.recommender`), and store each active profile's
ranked suggestions with their reasons. Each profile's list is replaced whole, so two
processes running it at once only do the work twice. Profiles with no activity keep no
list; reading falls back to popular titles for them. A serving process runs it in a
process of its own (`recommend_apart`): the fit and the suggestions are minutes of CPU at
a million history rows, which would otherwise stall every request of the process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.catalog.maturity import ADULT_MAX_LEVEL, KIDS_MAX_LEVEL
from server.catalog.recommender import Activity, Recommender, TitleFacts
from server.core.clock import from_ms, now, to_ms
from server.platform.apart import run_apart
from storage import mongo
from storage.catalog.categories import CategoryRepository
from storage.catalog.history import HistoryRepository
from storage.catalog.recommendations import RecommendationRepository
from storage.catalog.reviews import ReviewRepository
from storage.catalog.titles import TitleRepository
from storage.catalog.watchlist import WatchlistRepository

log = logging.getLogger("nameless.catalog.rollups")

TRENDING_DAYS = 7

SUGGESTIONS_PER_PROFILE = 30
STATE_WEIGHT = {"finished": 1.0, "up_next": 1.0, "watching": 0.6}
WATCHLIST_WEIGHT = 0.4
RATING_FACTOR = {5: 1.6, 4: 1.3, 3: 1.0, 2: -0.3, 1: -0.6}  # below 3 the profile disliked it


@dataclass(frozen=True)
class StoreAddress:
    """Where a worker process connects to the same database."""

    url: str
    db: str
    timeout_ms: int = 5000


@dataclass
class RollupSources:
    titles: TitleRepository
    history: HistoryRepository
    watchlist: WatchlistRepository
    reviews: ReviewRepository
    categories: CategoryRepository
    store: RecommendationRepository
    computed: Callable[[], Awaitable[None]] | None = None  # told when a run has stored new lists
    address: StoreAddress | None = None  # set: `recommend_apart` runs the job in a worker process


async def load_activity(sources: RollupSources) -> list[Activity]:
    weights: dict[str, dict[str, float]] = defaultdict(dict)
    seen: dict[str, set[str]] = defaultdict(set)
    owners: dict[str, str] = {}
    async for row in sources.history.all_title_progress():
        pid, tid = row["profile_id"], row["title_id"]
        owners[pid] = row.get("user_id", "")
        weights[pid][tid] = STATE_WEIGHT.get(row.get("state", "watching"), 0.6)
        seen[pid].add(tid)
    async for row in sources.watchlist.all_rows():
        pid, tid = row["profile_id"], row["title_id"]
        owners.setdefault(pid, row.get("user_id", ""))
        weights[pid].setdefault(tid, WATCHLIST_WEIGHT)
        seen[pid].add(tid)
    async for row in sources.reviews.all_ratings():
        pid, tid = row["profile_id"], row["title_id"]
        owners.setdefault(pid, row.get("user_id", ""))
        factor = RATING_FACTOR.get(int(row.get("rating", 3)), 1.0)
        base = weights[pid].get(tid, 0.8)
        weights[pid][tid] = base * factor if factor > 0 else factor
        seen[pid].add(tid)
    kids = await sources.store.kids_profiles(list(owners))
    return [Activity(profile_id=pid, user_id=owners[pid], weights=weights[pid], seen=seen[pid],
                     max_level=KIDS_MAX_LEVEL if pid in kids else ADULT_MAX_LEVEL) for pid in owners]


async def load_titles(sources: RollupSources, now_ms: int) -> dict[str, TitleFacts]:
    return {
        str(d["_id"]): TitleFacts(id=str(d["_id"]), name=d.get("title", ""), genres=tuple(d.get("genres", [])),
                                  people=tuple(d.get("people", [])[:12]), popularity=float(d.get("popularity", 0)),
                                  level=int(d.get("maturity_level", ADULT_MAX_LEVEL)))
        async for d in sources.titles.catalog(now_ms)
    }


async def recommend(sources: RollupSources, *, now_ms: int | None = None,
                    limit: int = SUGGESTIONS_PER_PROFILE) -> int:
    """Recompute and store suggestions for every profile with activity; returns how many."""
    started = time.monotonic()
    now_ms = now_ms if now_ms is not None else to_ms(now())
    titles = await load_titles(sources, now_ms)
    genre_names = {c["slug"]: c["name"] for c in await sources.categories.all("genre")}
    activities = await load_activity(sources)
    model = Recommender(titles, genre_names).fit(activities)
    for activity in activities:
        items = [{"title_id": s.title_id, "score": s.score, "reason": s.reason}
                 for s in model.suggest(activity, limit)]
        await sources.store.save(activity.profile_id, activity.user_id, items, now_ms)
    await sources.store.drop_older_than(now_ms)
    if sources.computed is not None:
        await sources.computed()
    log.info("recommendations computed", extra={"profiles": len(activities), "titles": len(titles),
                                                "seconds": round(time.monotonic() - started, 2)})
    return len(activities)


async def recommend_apart(sources: RollupSources) -> int:
    """`recommend` in a worker process with its own connection; this process only waits,
    then tells its readers (and, through pub/sub, the other processes') that the lists
    changed."""
    if sources.address is None:
        return await recommend(sources)
    started = time.monotonic()
    count = await run_apart(recommend_at, sources.address, name="nameless-recommendations")
    if sources.computed is not None:
        await sources.computed()
    log.info("recommendations computed apart", extra={"profiles": count,
                                                      "seconds": round(time.monotonic() - started, 2)})
    return count


def recommend_at(address: StoreAddress) -> int:
    """A worker process's entry point (module level, so that it pickles)."""
    return asyncio.run(_recommend_at(address))


async def _recommend_at(address: StoreAddress) -> int:
    client = mongo.connect(address.url, timeout_ms=address.timeout_ms)
    try:
        db = client[address.db]
        return await recommend(RollupSources(TitleRepository(db), HistoryRepository(db), WatchlistRepository(db),
                                             ReviewRepository(db), CategoryRepository(db),
                                             RecommendationRepository(db)))
    finally:
        await client.close()


def recent_days(now_ms: int, days: int) -> list[str]:
    today = from_ms(now_ms).date()
    return [(today - dt.timedelta(days=n)).isoformat() for n in range(days)]


async def trending(titles: TitleRepository, *, now_ms: int | None = None, days: int = TRENDING_DAYS) -> int:
    """Recompute every title's trending score; returns how many titles trend."""
    started = time.monotonic()
    now_ms = now_ms if now_ms is not None else to_ms(now())
    scores = await titles.views_by_title(recent_days(now_ms, days))
    await titles.set_trending(scores)
    log.info("trending computed", extra={"titles": len(scores), "seconds": round(time.monotonic() - started, 2)})
    return len(scores)
