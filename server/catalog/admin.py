"""Content management: titles, seasons, episodes and categories, the release schedule and
archiving. Used by content managers through the admin API, by the scheduled publish job
and by the demo loader. Every change is written to the audit log (the job and the demo
loader record themselves with no actor).

A title's status moves draft → scheduled (publish_at) → published → archived, and back to
draft from any of them. Publishing a title for the first time, or an episode of a
published series, emits a ContentReleased event. Derived fields (maturity level, the
people list, search keys, the availability window in epoch ms) are computed here at write
time, so viewer queries are plain indexed comparisons.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from server.catalog.browse import category_view
from server.catalog.cards import rating_view
from server.catalog.maturity import DEFAULT_RATING, RATINGS, level
from server.catalog.releases import ContentReleased, ReleaseListener
from server.catalog.text_search import prefix_keys, query_keys
from server.core import errors
from server.core.clock import iso, now, to_ms
from server.core.paging import PageResult
from server.core.permissions import Principal
from server.staff.audit import AuditLog
from storage.catalog.categories import CategoryRepository, SlugTaken
from storage.catalog.episodes import EpisodeExists, EpisodeRepository, order_key
from storage.catalog.seasons import SeasonExists, SeasonRepository
from storage.catalog.titles import FOREVER_MS, TitleRepository

TITLE_STATUSES = ("draft", "scheduled", "published", "archived")
# status → the statuses a title may come from
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "scheduled": ("draft", "scheduled"),
    "published": ("draft", "scheduled", "archived"),
    "archived": ("draft", "scheduled", "published"),
    "draft": ("scheduled", "published", "archived"),
}
DERIVED_FROM = {"title", "original_title", "cast", "crew"}


def _invalid(field: str, message: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(details={"fields": {field: message}})


def _ms(value: dt.datetime | None, default: int) -> int:
    return to_ms(value) if value is not None else default


def admin_title_view(doc: dict[str, Any], seasons: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    end = doc.get("window_end_ms", FOREVER_MS)
    view = {
        "id": str(doc["_id"]),
        **{k: doc.get(k) for k in ("type", "title", "original_title", "synopsis", "year", "maturity_rating",
                                   "runtime_s", "media_asset_id", "status", "popularity", "version")},
        "playable": bool(doc.get("playable")),
        **{k: list(doc.get(k, [])) for k in ("genres", "categories", "languages", "audio_tracks",
                                             "subtitle_tracks", "cast", "crew")},
        "artwork": dict(doc.get("artwork") or {}),
        "publish_at": iso(doc["publish_at_ms"]) if doc.get("publish_at_ms") else None,
        "published_at": iso(doc["published_ms"]) if doc.get("published_ms") else None,
        "available_from": iso(doc["window_start_ms"]) if doc.get("window_start_ms") else None,
        "available_until": None if end >= FOREVER_MS else iso(end),
        "rating": rating_view(doc),
        "created_at": iso(doc.get("created_at")),
        "updated_at": iso(doc.get("updated_ms")),
    }
    if seasons is not None:
        view["seasons"] = seasons
    return view


def admin_episode_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "title_id": doc["title_id"],
        "season": doc["season_number"],
        "number": doc["number"],
        **{k: doc.get(k) for k in ("name", "synopsis", "runtime_s", "media_asset_id", "status")},
        "playable": bool(doc.get("playable")),
        "artwork": dict(doc.get("artwork") or {}),
        "publish_at": iso(doc["publish_at_ms"]) if doc.get("publish_at_ms") else None,
        "published_at": iso(doc["published_ms"]) if doc.get("published_ms") else None,
    }


def _season_view(doc: dict[str, Any], count: int) -> dict[str, Any]:
    return {"number": doc["number"], "name": doc.get("name"), "synopsis": doc.get("synopsis", ""),
            "episode_count": count}


def derived_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """What viewer queries need, computed from a title at write time: its people (for the
    recommender) and the search keys of its names and people."""
    people: list[str] = []
    for person in [*doc.get("cast", []), *doc.get("crew", [])]:
        if person["name"] not in people:
            people.append(person["name"])
    names = [doc.get("title") or "", doc.get("original_title") or "", *people]
    return {"people": people, "search_keys": prefix_keys(names)}


def window_fields(fields: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, int]:
    """available_from/until (popped from `fields`) as the epoch-ms window viewers filter on."""
    out: dict[str, int] = {}
    if "available_from" in fields:
        out["window_start_ms"] = _ms(fields.pop("available_from"), 0)
    if "available_until" in fields:
        out["window_end_ms"] = _ms(fields.pop("available_until"), FOREVER_MS)
    start = out.get("window_start_ms", (current or {}).get("window_start_ms", 0))
    end = out.get("window_end_ms", (current or {}).get("window_end_ms", FOREVER_MS))
    if start >= end:
        raise _invalid("available_until", "must be after available_from")
    return out


def new_title_document(fields: dict[str, Any], created_by: str | None, at: dt.datetime) -> dict[str, Any]:
    """A new title as stored: defaults, derived fields, status draft (or scheduled when
    `publish_at` is given). Pure, so bench/catalog.py bulk-loads exactly this shape."""
    fields = dict(fields)
    publish_at = fields.pop("publish_at", None)
    window = window_fields(fields)
    rating = fields.get("maturity_rating") or DEFAULT_RATING
    doc: dict[str, Any] = {
        "genres": [], "categories": [], "languages": [], "audio_tracks": [], "subtitle_tracks": [],
        "cast": [], "crew": [], "artwork": {}, "synopsis": "",
        **fields,
        "maturity_rating": rating,
        "maturity_level": level(rating),
        "window_start_ms": 0,
        "window_end_ms": FOREVER_MS,
        **window,
        "status": "scheduled" if publish_at else "draft",
        "publish_at_ms": to_ms(publish_at) if publish_at else None,
        "published_ms": 0,
        "popularity": 0, "trending_score": 0, "rating_sum": 0, "rating_count": 0, "rating_avg": 0.0,
        "version": 1,
        "created_at": at,
        "created_by": created_by,
        "updated_ms": to_ms(at),
    }
    doc.update(derived_fields(doc))
    return doc


class ContentAdminService:
    def __init__(self, titles: TitleRepository, seasons: SeasonRepository, episodes: EpisodeRepository,
                 categories: CategoryRepository, audit: AuditLog, releases: ReleaseListener,
                 changed: Callable[[Iterable[str]], Awaitable[None]], clock: Callable[[], dt.datetime] = now) -> None:
        self._titles = titles
        self._changed = changed  # every process's read model reloads these titles
        self._seasons = seasons
        self._episodes = episodes
        self._categories = categories
        self._audit = audit
        self._releases = releases
        self._clock = clock

    # --- titles ---------------------------------------------------------------------

    async def list_titles(self, *, status: str | None, kind: str | None, q: str | None, limit: int,
                          cursor: str | None) -> PageResult:
        keys = query_keys(q) if q else None
        page = await self._titles.admin_page(status=status, kind=kind, keys=keys, limit=limit, cursor=cursor)
        return PageResult([admin_title_view(d) for d in page.items], page.next_cursor)

    async def _title(self, title_id: str) -> dict[str, Any]:
        doc = await self._titles.get(title_id)
        if doc is None:
            raise errors.NotFound("No such title.", code="title_not_found")
        return doc

    async def get_title(self, title_id: str) -> dict[str, Any]:
        doc = await self._title(title_id)
        seasons = None
        if doc["type"] == "series":
            counts = await self._episodes.season_counts(title_id, published_only=False)
            seasons = [_season_view(s, counts.get(s["number"], 0)) for s in await self._seasons.for_title(title_id)]
        return admin_title_view(doc, seasons)

    async def _check_slugs(self, fields: dict[str, Any]) -> None:
        for field, kind in (("genres", "genre"), ("categories", "collection")):
            wanted = fields.get(field)
            if wanted:
                unknown = sorted(set(wanted) - await self._categories.existing_slugs(wanted, kind))
                if unknown:
                    raise errors.Unprocessable(f"Unknown {kind}: {', '.join(unknown)}.", code=f"unknown_{kind}",
                                               details={"fields": {field: f"unknown: {', '.join(unknown)}"}})

    async def create_title(self, actor: Principal | None, fields: dict[str, Any], ip: str = "-") -> dict[str, Any]:
        fields = {k: v for k, v in fields.items() if v is not None}  # absent and null both mean "default"
        if not fields.get("maturity_rating"):  # a silent default would put a title in front of the wrong audience
            raise errors.Unprocessable(
                "Choose a maturity rating for the title.", code="maturity_rating_required",
                details={"fields": {"maturity_rating": f"required: one of {', '.join(RATINGS)}"}})
        if fields.get("type") == "series" and fields.get("media_asset_id"):
            raise _invalid("media_asset_id", "a series has no media of its own; attach it to an episode")
        await self._check_slugs(fields)
        doc = await self._titles.insert(new_title_document(fields, actor.user_id if actor else None, self._clock()))
        await self._changed([doc["_id"]])
        await self._audit.record(actor, "title.create", target_type="title", target_id=doc["_id"], ip=ip,
                                 details={"title": doc["title"], "type": doc["type"], "status": doc["status"]})
        return admin_title_view(doc)

    async def update_title(self, actor: Principal | None, title_id: str, changes: dict[str, Any], ip: str = "-",
                           version: int | None = None) -> dict[str, Any]:
        current = await self._title(title_id)
        if version is not None and version != current.get("version"):
            raise errors.Conflict("The title was changed by someone else; reload it.", code="version_conflict")
        changes = dict(changes)
        if not changes:  # nothing to change: nothing to write or audit
            return admin_title_view(current)
        if current["type"] == "series" and changes.get("media_asset_id"):
            raise _invalid("media_asset_id", "a series has no media of its own; attach it to an episode")
        await self._check_slugs(changes)
        window = window_fields(changes, current)
        if "maturity_rating" in changes:
            changes["maturity_rating"] = changes["maturity_rating"] or DEFAULT_RATING
            changes["maturity_level"] = level(changes["maturity_rating"])
        changes.update(window)
        if DERIVED_FROM & set(changes):
            changes.update(derived_fields({**current, **changes}))
        updated = await self._titles.update(title_id, changes, version=current.get("version"))
        if updated is None:
            raise errors.Conflict("The title was changed by someone else; reload it.", code="version_conflict")
        await self._changed([title_id])
        await self._audit.record(actor, "title.update", target_type="title", target_id=title_id, ip=ip,
                                 details={"fields": sorted(k for k in changes if k not in ("people", "search_keys"))})
        return admin_title_view(updated)

    async def _move(self, actor: Principal | None, title_id: str, status: str, ip: str, action: str,
                    extra: dict[str, Any] | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
        current = await self._title(title_id)
        if current["status"] not in TRANSITIONS[status]:
            raise errors.Conflict(f"A {current['status']} title cannot become {status}.", code="invalid_transition",
                                  details={"status": current["status"]})
        at_ms = to_ms(self._clock())
        changes: dict[str, Any] = {"status": status, **(extra or {})}
        minimum = None
        if status == "published":
            changes["published_ms"] = current.get("first_published_ms") or at_ms
            minimum = {"first_published_ms": at_ms}
        if status == "archived":
            changes["archived_ms"] = at_ms
        updated = await self._titles.update(title_id, changes, statuses=[current["status"]], minimum=minimum)
        if updated is None:
            raise errors.Conflict("The title changed meanwhile; reload it.", code="version_conflict")
        await self._changed([title_id])
        await self._audit.record(actor, action, target_type="title", target_id=title_id, ip=ip,
                                 details={"from": current["status"], "to": status, **(details or {})})
        if status == "published" and not current.get("first_published_ms"):
            await self._releases(ContentReleased(kind="title", title_id=title_id, title=updated["title"],
                                                 released_ms=at_ms, scheduled=False))
        return admin_title_view(updated)

    async def publish(self, actor: Principal | None, title_id: str, ip: str = "-", *,
                      without_media: bool = False) -> dict[str, Any]:
        """Publishing what nobody can play is a choice to make on purpose (a coming-soon
        page, say), never an accident: without ready media it needs `without_media`."""
        current = await self._title(title_id)
        if not current.get("playable") and not without_media:
            what = "any of its episodes" if current["type"] == "series" else "it"
            raise errors.Conflict(f"No media is ready for {what}; upload it first, or publish with "
                                  "without_media to show the title anyway.", code="media_not_ready",
                                  details={"without_media": "set true to publish with no playable media"})
        return await self._move(actor, title_id, "published", ip, "title.publish", {"publish_at_ms": None},
                                {"without_media": True} if not current.get("playable") else None)

    async def media_ready(self, content_id: str, asset_id: str, duration_s: float) -> None:
        """The media pipeline's report that an asset became playable: the movie or episode
        points at it and takes its runtime, and the documents carry `playable` (a series
        once any episode is), so every list reads it with no query per item."""
        runtime = max(1, round(duration_s))
        changes = {"media_asset_id": asset_id, "runtime_s": runtime, "playable": True}
        episode = await self._episodes.get(content_id)
        if episode is not None:
            await self._episodes.update(content_id, changes)
            await self._titles.update(episode["title_id"], {"playable": True})
            title_id = episode["title_id"]
        else:
            if await self._titles.update(content_id, changes) is None:
                return  # deleted meanwhile: nothing to point at the asset
            title_id = content_id
        await self._changed([title_id])
        await self._audit.record(None, "content.media_ready", target_type="title", target_id=title_id, ip="job",
                                 details={"content_id": content_id, "asset_id": asset_id, "runtime_s": runtime})

    async def schedule(self, actor: Principal | None, title_id: str, publish_at: dt.datetime,
                       ip: str = "-") -> dict[str, Any]:
        return await self._move(actor, title_id, "scheduled", ip, "title.schedule",
                                {"publish_at_ms": to_ms(publish_at)}, {"publish_at": iso(publish_at)})

    async def archive(self, actor: Principal | None, title_id: str, ip: str = "-") -> dict[str, Any]:
        return await self._move(actor, title_id, "archived", ip, "title.archive")

    async def unpublish(self, actor: Principal | None, title_id: str, ip: str = "-") -> dict[str, Any]:
        return await self._move(actor, title_id, "draft", ip, "title.unpublish", {"publish_at_ms": None})

    # --- the scheduled release -------------------------------------------------------

    async def publish_due(self, now_ms: int | None = None) -> list[ContentReleased]:
        """Publish every title and episode whose publish_at has passed. Several processes
        may run this at once: each publish is a conditional update that one of them wins,
        and only the winner audits and reports the release."""
        now_ms = now_ms if now_ms is not None else to_ms(self._clock())
        released: list[ContentReleased] = []
        for doc in await self._titles.due(now_ms):
            published_ms = doc.get("first_published_ms") or now_ms
            won = await self._titles.publish_if_due(doc["_id"], doc["publish_at_ms"], published_ms, now_ms)
            if won is None:
                continue
            await self._changed([doc["_id"]])
            await self._audit.record(None, "title.publish_scheduled", target_type="title", target_id=doc["_id"],
                                     ip="job", details={"publish_at": iso(doc["publish_at_ms"])})
            if not doc.get("first_published_ms"):
                released.append(ContentReleased(kind="title", title_id=doc["_id"], title=won["title"],
                                                released_ms=now_ms))
        for ep in await self._episodes.due(now_ms):
            won = await self._episodes.publish_if_due(ep["_id"], ep["publish_at_ms"], now_ms)
            if won is None:
                continue
            await self._changed([ep["title_id"]])
            await self._audit.record(None, "episode.publish_scheduled", target_type="episode", target_id=ep["_id"],
                                     ip="job", details={"title_id": ep["title_id"]})
            series = await self._titles.get(ep["title_id"])
            if series is not None and series.get("status") == "published":
                released.append(self._episode_released(series, won, now_ms, scheduled=True))
        return released

    @staticmethod
    def _episode_released(series: dict[str, Any], ep: dict[str, Any], at_ms: int, *, scheduled: bool):
        return ContentReleased(kind="episode", title_id=str(series["_id"]), title=series["title"], released_ms=at_ms,
                               episode_id=str(ep["_id"]), season=ep["season_number"], episode=ep["number"],
                               episode_name=ep.get("name"), scheduled=scheduled)

    # --- seasons --------------------------------------------------------------------

    async def _series(self, title_id: str) -> dict[str, Any]:
        doc = await self._title(title_id)
        if doc["type"] != "series":
            raise errors.Unprocessable("Only a series has seasons and episodes.", code="not_a_series")
        return doc

    async def add_season(self, actor: Principal | None, title_id: str, fields: dict[str, Any],
                         ip: str = "-") -> dict[str, Any]:
        await self._series(title_id)
        at = self._clock()
        try:
            doc = await self._seasons.insert({"title_id": title_id, "synopsis": "", **fields, "created_at": at,
                                              "updated_ms": to_ms(at)})
        except SeasonExists:
            raise errors.Conflict("This season number exists already.", code="season_exists") from None
        await self._audit.record(actor, "season.create", target_type="title", target_id=title_id, ip=ip,
                                 details={"season": doc["number"]})
        return _season_view(doc, 0)

    async def update_season(self, actor: Principal | None, title_id: str, number: int, changes: dict[str, Any],
                            ip: str = "-") -> dict[str, Any]:
        await self._series(title_id)
        doc = await self._seasons.update(title_id, number, changes) if changes else await self._seasons.get(
            title_id, number)
        if doc is None:
            raise errors.NotFound("No such season.", code="season_not_found")
        await self._audit.record(actor, "season.update", target_type="title", target_id=title_id, ip=ip,
                                 details={"season": number, "fields": sorted(changes)})
        await self._changed([title_id])  # the title's detail shows its seasons' names
        return _season_view(doc, await self._episodes.count_in_season(title_id, number))

    async def delete_season(self, actor: Principal | None, title_id: str, number: int, ip: str = "-") -> None:
        await self._series(title_id)
        if await self._episodes.count_in_season(title_id, number):
            raise errors.Conflict("Delete or move the season's episodes first.", code="season_not_empty")
        if not await self._seasons.delete(title_id, number):
            raise errors.NotFound("No such season.", code="season_not_found")
        await self._audit.record(actor, "season.delete", target_type="title", target_id=title_id, ip=ip,
                                 details={"season": number})

    # --- episodes -------------------------------------------------------------------

    async def list_episodes(self, title_id: str, season: int | None, limit: int, cursor: str | None) -> PageResult:
        await self._series(title_id)
        page = await self._episodes.page(title_id, season=season, published_only=False, limit=limit, cursor=cursor)
        return PageResult([admin_episode_view(e) for e in page.items], page.next_cursor)

    async def create_episode(self, actor: Principal | None, fields: dict[str, Any], ip: str = "-") -> dict:
        fields = {k: v for k, v in fields.items() if v is not None}
        title_id, season = fields.pop("title_id"), fields.pop("season")
        series = await self._series(title_id)
        if await self._seasons.get(title_id, season) is None:
            raise errors.Unprocessable("Create the season first.", code="season_not_found",
                                       details={"fields": {"season": "no such season"}})
        at = self._clock()
        at_ms = to_ms(at)
        publish_at = fields.pop("publish_at", None)
        scheduled = publish_at is not None and to_ms(publish_at) > at_ms
        try:
            doc = await self._episodes.insert({
                "synopsis": "", "artwork": {}, **fields, "title_id": title_id, "season_number": season,
                "status": "scheduled" if scheduled else "published",
                "publish_at_ms": to_ms(publish_at) if scheduled else None,
                "published_ms": None if scheduled else at_ms,
                "created_at": at, "updated_ms": at_ms,
            })
        except EpisodeExists:
            raise errors.Conflict("This episode number exists already in the season.", code="episode_exists") from None
        await self._audit.record(actor, "episode.create", target_type="episode", target_id=doc["_id"], ip=ip,
                                 details={"title_id": title_id, "season": season, "number": doc["number"],
                                          "status": doc["status"]})
        await self._changed([title_id])  # the detail's episode counts
        if not scheduled and series.get("status") == "published":
            await self._releases(self._episode_released(series, doc, at_ms, scheduled=False))
        return admin_episode_view(doc)

    async def update_episode(self, actor: Principal | None, episode_id: str, changes: dict[str, Any],
                             ip: str = "-") -> dict[str, Any]:
        current = await self._episodes.get(episode_id)
        if current is None:
            raise errors.NotFound("No such episode.", code="episode_not_found")
        changes = dict(changes)
        if "publish_at" in changes:
            publish_at = changes.pop("publish_at")
            if current["status"] == "published" and publish_at is not None:
                raise errors.Conflict("The episode is out already.", code="invalid_transition")
            if current["status"] == "scheduled":
                if publish_at is None:
                    raise _invalid("publish_at", "a scheduled episode needs a release time")
                changes["publish_at_ms"] = to_ms(publish_at)
        if "season" in changes or "number" in changes:
            season = changes.pop("season", current["season_number"])
            number = changes.get("number", current["number"])
            if await self._seasons.get(current["title_id"], season) is None:
                raise errors.Unprocessable("Create the season first.", code="season_not_found",
                                           details={"fields": {"season": "no such season"}})
            changes.update(season_number=season, number=number, order_key=order_key(season, number))
        try:
            doc = await self._episodes.update(episode_id, changes)
        except EpisodeExists:
            raise errors.Conflict("This episode number exists already in the season.", code="episode_exists") from None
        if doc is None:
            raise errors.NotFound("No such episode.", code="episode_not_found")
        await self._changed([doc["title_id"]])  # what others keep of its episodes goes
        await self._audit.record(actor, "episode.update", target_type="episode", target_id=episode_id, ip=ip,
                                 details={"title_id": doc["title_id"], "fields": sorted(changes)})
        return admin_episode_view(doc)

    async def delete_episode(self, actor: Principal | None, episode_id: str, ip: str = "-") -> None:
        gone = await self._episodes.delete(episode_id)
        if gone is None:
            raise errors.NotFound("No such episode.", code="episode_not_found")
        await self._changed([gone["title_id"]])
        await self._audit.record(actor, "episode.delete", target_type="episode", target_id=episode_id, ip=ip,
                                 details={"title_id": gone["title_id"], "season": gone["season_number"],
                                          "number": gone["number"]})

    # --- categories -----------------------------------------------------------------

    async def list_categories(self) -> list[dict[str, Any]]:
        return [category_view(c) for c in await self._categories.all()]

    async def create_category(self, actor: Principal | None, fields: dict[str, Any], ip: str = "-") -> dict:
        at = self._clock()
        try:
            doc = await self._categories.insert({"position": 0, **fields, "created_at": at, "updated_ms": to_ms(at)})
        except SlugTaken:
            raise errors.Conflict("A category with this slug exists already.", code="slug_taken") from None
        await self._audit.record(actor, "category.create", target_type="category", target_id=doc["_id"], ip=ip,
                                 details={"slug": doc["slug"], "kind": doc["kind"]})
        return category_view(doc)

    async def update_category(self, actor: Principal | None, category_id: str, changes: dict[str, Any],
                              ip: str = "-") -> dict[str, Any]:
        doc = await self._categories.update(category_id, changes) if changes else await self._categories.get(
            category_id)
        if doc is None:
            raise errors.NotFound("No such category.", code="category_not_found")
        await self._audit.record(actor, "category.update", target_type="category", target_id=category_id, ip=ip,
                                 details={"fields": sorted(changes)})
        return category_view(doc)

    async def delete_category(self, actor: Principal | None, category_id: str, ip: str = "-") -> None:
        doc = await self._categories.get(category_id)
        if doc is None:
            raise errors.NotFound("No such category.", code="category_not_found")
        field = "genres" if doc["kind"] == "genre" else "categories"
        used = await self._titles.count_using(field, doc["slug"])
        if used:
            raise errors.Conflict(f"{used} titles still use this category.", code="category_in_use",
                                  details={"titles": used})
        await self._categories.delete(category_id)
        await self._audit.record(actor, "category.delete", target_type="category", target_id=category_id, ip=ip,
                                 details={"slug": doc["slug"]})
