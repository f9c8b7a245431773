"""GET /home: the rows of the viewer's home page, in the contract's order: continue
watching, recommended, trending, new releases, then one row per genre. The first four are
always present (possibly empty) so clients can rely on the shape; genre rows without a
visible title are left out. Coming soon (announced titles, soonest first, each with its
`publish_at`) comes last, after the genre rows, when there is any: the contract fixes the
order of the others, so a client that reads rows by position is not thrown off.

Trending, new releases, coming soon and the genre rows are the same for every profile with the same
maturity ceiling, so they are computed once per ceiling and kept for a short while
(server/core/shared_cache.py). A publish or an archive therefore reaches these rows within
that time; the personal rows (continue watching, recommended) are always read fresh.
"""

from __future__ import annotations

import asyncio
from typing import Any

from server.catalog.browse import CatalogService
from server.catalog.history import HistoryService
from server.catalog.recommendations import RecommendationService
from server.catalog.viewers import Viewer
from server.core.clock import iso
from server.core.json_text import Encoded, encode
from server.core.shared_cache import SharedCache

ROW_SIZE = 20
MAX_GENRE_ROWS = 8


def _row(row_id: str, title: str, items: list[dict[str, Any]] | Encoded, **extra: Any) -> dict[str, Any]:
    return {"id": row_id, "title": title, "items": items, **extra}


class HomeService:
    def __init__(self, catalog: CatalogService, history: HistoryService, recommendations: RecommendationService,
                 shared: SharedCache) -> None:
        self._catalog = catalog
        self._history = history
        self._recommendations = recommendations
        self._shared = shared

    async def home(self, viewer: Viewer) -> dict[str, Any]:
        activity = await self._history.activity(viewer)  # one read for both personal rows
        # One after the other: each is nearly always answered from what this process keeps,
        # where three tasks of `gather` would cost more than the work they wrap.
        continuing = await self._history.continue_watching(viewer, ROW_SIZE, activity)
        recommended = await self._recommendations.for_viewer(viewer, ROW_SIZE, activity)
        shared = await self._shared.get(("home", viewer.max_level), lambda: self._compute_shared(viewer))
        # The kept row is up to the cache's age old: a title released, rescheduled or withdrawn
        # since is read again from the read model (a lookup per item), so it is never "soon" late.
        ids = [card.id for card, _ in shared["soon"]]
        current = await self._catalog.listed_cards(viewer, ids)
        soon = [{"title": current[i][0], "publish_at": iso(current[i][1])} for i in ids
                if i in current and current[i][1] is not None]
        rows = [
            _row("continue_watching", "Continue watching", continuing),
            _row("recommended", "Recommended for you", recommended["items"]),
            *shared["rows"],
            *([_row("coming_soon", "Coming soon", soon)] if soon else []),
        ]
        return {"profile_id": viewer.profile_id, "rows": rows}

    async def _compute_shared(self, viewer: Viewer) -> dict[str, Any]:
        """Trending, new releases and the genre rows (as JSON text), and the announced titles
        with their release times."""
        genres = (await self._catalog.genres())[:MAX_GENRE_ROWS]
        trending, new, soon, *by_genre = await asyncio.gather(
            self._catalog.top(viewer, "trending", ROW_SIZE),
            self._catalog.top(viewer, "new", ROW_SIZE),
            self._catalog.coming_soon(viewer, ROW_SIZE),
            *(self._catalog.top(viewer, "popular", ROW_SIZE, genre=g["slug"]) for g in genres),
        )
        if not trending:  # nothing watched lately: the all-time favourites stand in
            trending = await self._catalog.top(viewer, "popular", ROW_SIZE)
        rows = [
            _row("trending", "Trending now", [{"title": c} for c in trending]),
            _row("new_releases", "New releases", [{"title": c} for c in new]),
        ]
        for genre, cards in zip(genres, by_genre, strict=True):
            if cards:
                rows.append(_row(f"genre:{genre['slug']}", genre["name"], [{"title": c} for c in cards],
                                 genre=genre["slug"]))
        # Each shared row is spliced into every reply as the same text: encoded once here.
        return {"rows": [Encoded(encode(row)) for row in rows], "soon": soon}
