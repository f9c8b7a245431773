"""The recommendation job: read every profile's activity (title progress, watchlist,
ratings), fit the co-watch model once, and store each active profile's ranked suggestions
with their reasons (server/recommender.py has the model).

    count = await run_once(sources)        # sources: RecommendationSources from the wiring

Each profile's list is replaced whole, so two processes running the job at once only do
the work twice. Profiles with no activity keep no list; reading falls back to popular
titles for them.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from jobs.periodic import Periodic
from server.maturity import ADULT_MAX_LEVEL, KIDS_MAX_LEVEL
from server.recommender import Activity, Recommender, TitleFacts
from server.timeutil import now, to_ms
from storage.categories import CategoryRepository
from storage.history import HistoryRepository
from storage.recommendations import RecommendationRepository
from storage.reviews import ReviewRepository
from storage.titles import TitleRepository
from storage.watchlist import WatchlistRepository

log = logging.getLogger("nameless.jobs.recommendations")

SUGGESTIONS_PER_PROFILE = 30
DEFAULT_INTERVAL_S = 15 * 60.0
STATE_WEIGHT = {"finished": 1.0, "up_next": 1.0, "watching": 0.6}
WATCHLIST_WEIGHT = 0.4
RATING_FACTOR = {5: 1.6, 4: 1.3, 3: 1.0, 2: -0.3, 1: -0.6}  # below 3 the profile disliked it


@dataclass
class RecommendationSources:
    titles: TitleRepository
    history: HistoryRepository
    watchlist: WatchlistRepository
    reviews: ReviewRepository
    categories: CategoryRepository
    store: RecommendationRepository


async def load_activity(sources: RecommendationSources) -> list[Activity]:
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


async def load_titles(sources: RecommendationSources, now_ms: int) -> dict[str, TitleFacts]:
    return {
        str(d["_id"]): TitleFacts(id=str(d["_id"]), name=d.get("title", ""), genres=tuple(d.get("genres", [])),
                                  people=tuple(d.get("people", [])[:12]), popularity=float(d.get("popularity", 0)),
                                  level=int(d.get("maturity_level", ADULT_MAX_LEVEL)))
        for d in await sources.titles.catalog(now_ms)
    }


async def run_once(sources: RecommendationSources, *, now_ms: int | None = None,
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
    log.info("recommendations computed", extra={"profiles": len(activities), "titles": len(titles),
                                                "seconds": round(time.monotonic() - started, 2)})
    return len(activities)


class RecommendationScheduler(Periodic):
    def __init__(self, sources: RecommendationSources, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        super().__init__("recommendations", interval_s, lambda: run_once(sources), initial_delay_s=30.0)
