"""What viewers may see of the catalog, and how it is browsed and searched.

The visibility rule lives here and only here: a title is visible when it is published,
inside its availability window, and within the profile's maturity ceiling (kids profiles
see titles rated up to KIDS_MAX_RATING). Everything a viewer reads about a title (detail,
episodes, reviews, watchlist, home rows, recommendations) goes through `visible_title` or
the visible queries below, so a draft, a scheduled or an archived title is a 404 and
never appears in a list. The one exception is an announced title (scheduled for later,
within the ceiling): it may be put on a watchlist and shows in the coming soon row, so a
release has an audience before it is out; its detail and playback stay a 404.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from server.catalog.cards import title_card
from server.catalog.read_model import CatalogReadModel
from server.catalog.text_search import query_keys
from server.catalog.viewers import Viewer
from server.core import errors
from server.core.clock import iso, now, to_ms
from server.core.json_text import Encoded, encode
from server.core.local_cache import LocalCache
from storage.catalog.categories import CategoryRepository
from storage.catalog.episodes import EpisodeRepository
from storage.catalog.seasons import SeasonRepository
from storage.catalog.titles import FOREVER_MS, TitleRepository

EPISODES_TTL_S = 30.0  # a lost change message is bounded by this
EPISODES_CACHED = 50_000
DETAILS_CACHED = 5_000  # details (as reply text), seasons and episode pages kept per process (settings)


def episode_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "title_id": doc["title_id"],
        "season": doc["season_number"],
        "number": doc["number"],
        "name": doc.get("name"),
        "synopsis": doc.get("synopsis", ""),
        "runtime_s": doc.get("runtime_s"),
        "playable": bool(doc.get("playable")),
        "artwork": dict(doc.get("artwork") or {}),
        "published_at": iso(doc.get("published_ms")) if doc.get("published_ms") else None,
    }


def title_detail(doc: dict[str, Any], seasons: list[dict[str, Any]] | None) -> dict[str, Any]:
    end = doc.get("window_end_ms", FOREVER_MS)
    detail = {
        **title_card(doc),
        "original_title": doc.get("original_title"),
        "synopsis": doc.get("synopsis", ""),
        "categories": list(doc.get("categories", [])),
        "languages": list(doc.get("languages", [])),
        "audio_tracks": list(doc.get("audio_tracks", [])),
        "subtitle_tracks": list(doc.get("subtitle_tracks", [])),
        "cast": list(doc.get("cast", [])),
        "crew": list(doc.get("crew", [])),
        "published_at": iso(doc.get("published_ms")) if doc.get("published_ms") else None,
        "available_until": None if end >= FOREVER_MS else iso(end),
    }
    if seasons is not None:
        detail["seasons"] = seasons
    return detail


class CatalogService:
    def __init__(self, titles: TitleRepository, seasons: SeasonRepository, episodes: EpisodeRepository,
                 categories: CategoryRepository, model: CatalogReadModel,
                 clock: Callable[[], int] | None = None, details_cached: int = DETAILS_CACHED) -> None:
        self._titles = titles
        self._model = model
        self._seasons = seasons
        self._episodes = episodes
        self._categories = categories
        self._clock = clock or (lambda: to_ms(now()))
        # Episodes by id (continue watching, history pages), dropped with their title's
        # every change: the read model tells of each reload, here, by message or by poll.
        self._episode_docs: LocalCache[dict[str, Any]] = LocalCache(EPISODES_TTL_S, EPISODES_CACHED)
        # The model holds no details or episode lists (its size per title stays that of a
        # card): they are read by indexed point reads into this LRU of `details_cached`
        # entries, tagged by title and dropped with the title's every change, as above:
        # every writer of a title, its seasons or its episodes reports the title as changed.
        self._details: LocalCache[Any] = LocalCache(EPISODES_TTL_S, details_cached)
        model.on_change(self._forget_titles)

    def _forget_titles(self, ids: list[str]) -> None:
        self._episode_docs.forget(*ids)
        self._details.forget(*ids)

    def now_ms(self) -> int:
        return self._clock()

    # --- the rule ------------------------------------------------------------------

    async def visible_title(self, viewer: Viewer, title_id: str) -> dict[str, Any]:
        """The title if this profile may see it now; otherwise 404, whatever the reason.
        The read model decides (so a scheduled title shows at its publish time on every
        process); the document itself is one point read."""
        self._require_visible(viewer, title_id)
        return await self._title_doc(title_id)

    def _require_visible(self, viewer: Viewer, title_id: str) -> None:
        if not self._model.visible(title_id, self.now_ms(), viewer.max_level):
            raise errors.NotFound("No such title.", code="title_not_found")

    async def _title_doc(self, title_id: str) -> dict[str, Any]:
        doc = await self._details.load(("title", title_id), lambda: self._titles.get(title_id), tags=(title_id,))
        if doc is None:
            raise errors.NotFound("No such title.", code="title_not_found")
        doc = dict(doc)  # the kept one stays as read
        doc.pop("search_keys", None)
        if doc.get("status") == "scheduled":  # due, not yet flipped by the release job
            doc["published_ms"] = doc.get("published_ms") or doc.get("publish_at_ms")
        return doc

    async def listable_title(self, viewer: Viewer, title_id: str) -> str:
        """The id of a title this profile may put on its list: a visible or an announced one;
        otherwise 404, whatever the reason."""
        if not self._model.listable(title_id, self.now_ms(), viewer.max_level):
            raise errors.NotFound("No such title.", code="title_not_found")
        return title_id

    async def listed_cards(self, viewer: Viewer, ids: Iterable[str]) -> dict[str, tuple[Encoded, int | None]]:
        """Cards for the profile's list, each with its release time when it is not out yet."""
        return self._model.listed_cards(ids, self.now_ms(), viewer.max_level)

    async def coming_soon(self, viewer: Viewer, limit: int) -> list[tuple[Encoded, int]]:
        """Announced titles within the profile's ceiling, soonest first, with their release time."""
        return self._model.announced(self.now_ms(), viewer.max_level, limit)

    async def visible_cards(self, viewer: Viewer, ids: Iterable[str]) -> dict[str, Encoded]:
        return self._model.cards(ids, self.now_ms(), viewer.max_level)

    async def any_cards(self, ids: Iterable[str]) -> dict[str, Encoded]:
        """Cards whatever the status, for the viewer's own records (history)."""
        return self._model.cards(ids)

    async def changed(self, ids: Iterable[str]) -> None:
        """Titles a writer changed: every process's read model reloads them."""
        await self._model.changed(ids)

    # --- browsing ------------------------------------------------------------------

    async def browse(self, viewer: Viewer, *, kind: str | None = None, genre: str | None = None,
                     category: str | None = None, language: str | None = None, q: str | None = None,
                     sort: str = "popular", limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        keys = None
        if q is not None and q.strip():
            keys = query_keys(q)
            if not keys:  # only punctuation: nothing can match
                return {"items": [], "next_cursor": None}
        page = self._model.page(self.now_ms(), viewer.max_level, kind=kind, genre=genre, category=category,
                                language=language, keys=keys, sort=sort, limit=limit, cursor=cursor)
        return {"items": page.items, "next_cursor": page.next_cursor}

    async def top(self, viewer: Viewer, sort: str, limit: int, *, genre: str | None = None,
                  exclude: Iterable[str] = ()) -> list[Encoded]:
        return self._model.page(self.now_ms(), viewer.max_level, sort=sort, limit=limit, genre=genre,
                                exclude=exclude, positive=sort == "trending").items

    async def title(self, viewer: Viewer, title_id: str) -> Encoded:
        """The detail, as reply text: whether the profile may see it is decided per request
        (so a window or a release is exact to the clock); the text is kept until the title
        changes."""
        self._require_visible(viewer, title_id)
        return await self._details.load(("detail", title_id), lambda: self._detail(title_id), tags=(title_id,))

    async def _detail(self, title_id: str) -> Encoded:
        doc = await self._title_doc(title_id)
        seasons = None
        if doc.get("type") == "series":
            seasons = await self._seasons_of(title_id)
        return Encoded(encode(title_detail(doc, seasons)), title_id)

    async def _seasons_of(self, title_id: str) -> list[dict[str, Any]]:
        counts = await self._episodes.season_counts(title_id, published_only=True)
        return [
            {"number": s["number"], "name": s.get("name") or f"Season {s['number']}",
             "synopsis": s.get("synopsis", ""), "episode_count": counts.get(s["number"], 0)}
            for s in await self._seasons.for_title(title_id)
            if counts.get(s["number"], 0) > 0
        ]

    async def episodes(self, viewer: Viewer, title_id: str, season: int | None, limit: int,
                       cursor: str | None) -> dict[str, Any]:
        doc = await self.visible_title(viewer, title_id)
        if doc.get("type") != "series":
            return {"items": [], "next_cursor": None}
        items, next_cursor = await self._details.load(
            ("episodes", title_id, season, limit, cursor), lambda: self._episode_page(title_id, season, limit, cursor),
            tags=(title_id,))
        return {"items": [dict(e) for e in items], "next_cursor": next_cursor}

    async def _episode_page(self, title_id: str, season: int | None, limit: int,
                            cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        page = await self._episodes.page(title_id, season=season, published_only=True, limit=limit, cursor=cursor)
        return [episode_view(e) for e in page.items], page.next_cursor

    async def categories(self) -> list[dict[str, Any]]:
        return [category_view(c) for c in await self._categories.all()]

    async def genres(self) -> list[dict[str, Any]]:
        return [category_view(c) for c in await self._categories.all("genre")]

    # --- what playback and history need ------------------------------------------

    async def resolve_content(self, content_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A playable id is a movie's title id or an episode id: (title, episode or None)."""
        episode = await self._episodes.get(content_id)
        if episode is not None:
            title = await self._titles.get(episode["title_id"])
            if title is not None:
                return title, episode
        title = await self._titles.get(content_id)
        if title is None or title.get("type") != "movie":
            raise errors.NotFound("No such title or episode.", code="content_not_found")
        return title, None

    async def next_episode(self, title_id: str, after: dict[str, Any] | None) -> dict[str, Any] | None:
        if after is None:
            return await self._episodes.first(title_id)
        return await self._episodes.next_after(title_id, int(after["order_key"]))

    async def episodes_by_ids(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Kept per process and tagged by their title; every episode writer reports its
        title as changed (`ContentAdminService`), which drops them on every process."""
        return await self._episode_docs.load_many(  # type: ignore[return-value]
            ids, self._episodes.by_ids, lambda doc: (doc["title_id"],))


def category_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(doc["_id"]), "slug": doc["slug"], "name": doc["name"], "kind": doc["kind"],
            "position": doc.get("position", 0)}
