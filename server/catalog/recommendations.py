"""Reading a profile's suggestions: the list the recommendation job stored, filtered again
by what the profile may see now and has not finished since, topped up with popular titles
(so a new profile, or one the job has not reached yet, still gets a full row).

The stored list changes only when the job runs, so each process keeps a profile's list for
STORED_TTL_S; the job announces the end of each run (`recommendations.computed`) and every
process then drops all it kept."""

from __future__ import annotations

from typing import Any

from server.catalog.browse import CatalogService
from server.catalog.history import HistoryService
from server.catalog.recommender import POPULAR_REASON
from server.catalog.viewers import Viewer
from server.core.clock import iso
from server.core.json_text import Encoded, encode
from server.core.local_cache import LocalCache, same_objects
from server.core.shared_cache import SharedCache
from storage.catalog.recommendations import RecommendationRepository
from storage.state.pubsub import PubSub

POPULAR_POOL = 100  # popular titles kept per maturity ceiling for the top-up
COMPUTED_CHANNEL = "recommendations.computed"  # {}: a run of the job has stored new lists
STORED_TTL_S = 60.0
STORED_CACHED = 20_000
ITEMS_TEXT_KEPT = 2_000  # profiles whose suggestions are kept as reply text (about 8 KB each)


class RecommendationService:
    def __init__(self, store: RecommendationRepository, catalog: CatalogService, history: HistoryService,
                 shared: SharedCache, pubsub: PubSub) -> None:
        self._pubsub = pubsub
        self._stored: LocalCache[dict[str, Any]] = LocalCache(STORED_TTL_S, STORED_CACHED)
        self._items_text: LocalCache[tuple[tuple[Any, ...], Encoded]] = LocalCache(STORED_TTL_S, ITEMS_TEXT_KEPT)
        self._store = store
        self._catalog = catalog
        self._history = history
        self._shared = shared

    async def start(self) -> None:
        await self._stored.listen(self._pubsub, COMPUTED_CHANNEL)

    async def stop(self) -> None:
        await self._stored.stop()

    async def computed(self) -> None:
        """The job stored new lists: drop every kept one, here and on every process."""
        self._stored.clear()
        await self._pubsub.publish(COMPUTED_CHANNEL, {})

    async def for_viewer(self, viewer: Viewer, limit: int = 20,
                         activity: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if activity is None:
            activity = await self._history.activity(viewer)
        doc = (await self._stored.load(viewer.profile_id, lambda: self._stored_list(viewer.profile_id))) or None
        stored = list(doc.get("items", [])) if doc else []
        ids = [str(item["title_id"]) for item in stored]
        cards = await self._catalog.visible_cards(viewer, ids)
        popular = await self._shared.get(("popular", viewer.max_level),
                                         lambda: self._catalog.top(viewer, "popular", POPULAR_POOL))
        # The items' text is reused while it was made from the very same stored list,
        # activity, visible cards and popular titles (see HistoryService.continue_watching).
        inputs = (doc, activity, limit, popular, *(cards.get(i) for i in ids))
        kept = self._items_text.get(viewer.profile_id)
        if kept is not None and same_objects(kept[0], inputs):
            text = kept[1]
        else:
            text = Encoded(encode(await self._items(viewer, limit, activity, stored, ids, cards, popular)))
            self._items_text.put(viewer.profile_id, (inputs, text))
        return {"items": text, "next_cursor": None,
                "computed_at": iso(doc["computed_ms"]) if doc and doc.get("computed_ms") else None}

    async def _items(self, viewer: Viewer, limit: int, activity: list[dict[str, Any]], stored: list[dict[str, Any]],
                     ids: list[str], cards: dict[str, Encoded], popular: list[Encoded]) -> list[dict[str, Any]]:
        finished = await self._history.finished_titles(viewer, ids, activity)
        items: list[dict[str, Any]] = []
        for item in stored:
            tid = str(item["title_id"])
            if tid in cards and tid not in finished:
                items.append({"title": cards[tid], "reason": item.get("reason") or POPULAR_REASON,
                              "score": float(item.get("score", 0.0))})
            if len(items) >= limit:
                break
        if len(items) < limit:
            started = await self._history.started_titles(viewer, activity)
            exclude = set(started) | {i["title"]["id"] for i in items}
            for card in popular:
                if len(items) >= limit:
                    break
                if card["id"] not in exclude:
                    items.append({"title": card, "reason": POPULAR_REASON, "score": 0.0})
        return items

    async def _stored_list(self, profile_id: str) -> dict[str, Any]:
        """The stored document, or an empty one (kept too: most profiles have none yet)."""
        return await self._store.get(profile_id) or {}
