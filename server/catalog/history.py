"""Watch history, continue watching and the watchlist.

Progress is written through one method, `record_progress`, which playback heartbeats call
(and nothing else writes history): the position and duration of one movie or episode, when
it was last watched, whether it is completed (at 90 percent), and, per title, what the
profile should continue with: the same content, or the next episode once one is completed.

A profile's per-title rows (what the home page and the recommendations read) are kept per
process for ACTIVITY_TTL_S and dropped by every write of that profile's progress: on the
writing process before the write is answered, on every other process when the
`history.changed` message arrives. The viewer who just watched therefore sees their own
progress at once; a lost message is bounded by the lifetime.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from server.catalog.browse import CatalogService
from server.catalog.viewers import Viewer
from server.core.clock import from_ms, iso, now, to_ms
from server.core.json_text import Encoded, encode
from server.core.local_cache import LocalCache, same_objects
from storage.catalog.history import ACTIVE_STATES, HistoryRepository
from storage.catalog.titles import TitleRepository
from storage.catalog.watchlist import WatchlistRepository
from storage.state.pubsub import PubSub

COMPLETED_AT = 0.9  # share of the duration after which a movie or an episode counts as watched
HISTORY_CHANNEL = "history.changed"  # {"profile_id"}
ACTIVITY_TTL_S = 30.0
ACTIVITY_CACHED = 20_000  # profiles whose rows a process keeps (least recently used go first)
ROWS_TEXT_KEPT = 2_000  # profiles whose continue watching row is kept as text (about 10 KB each)


def is_completed(position: float, duration: float) -> bool:
    return duration > 0 and position >= COMPLETED_AT * duration


def _episode_ref(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {"id": str(doc["_id"]), "season": doc["season_number"], "number": doc["number"], "name": doc.get("name")}


def _changed_profile(message: dict[str, Any]) -> list[str]:
    profile_id = message.get("profile_id")
    return [profile_id] if isinstance(profile_id, str) else []


class HistoryService:
    def __init__(self, history: HistoryRepository, watchlist: WatchlistRepository, titles: TitleRepository,
                 catalog: CatalogService, pubsub: PubSub, clock: Callable[[], dt.datetime] = now,
                 activity_ttl_s: float = ACTIVITY_TTL_S) -> None:
        self._pubsub = pubsub
        self._activity: LocalCache[list[dict[str, Any]]] = LocalCache(activity_ttl_s, ACTIVITY_CACHED)
        self._rows_text: LocalCache[tuple[tuple[Any, ...], Encoded]] = LocalCache(activity_ttl_s, ROWS_TEXT_KEPT)
        self._history = history
        self._watchlist = watchlist
        self._titles = titles
        self._catalog = catalog
        self._clock = clock

    async def start(self) -> None:
        await self._activity.listen(self._pubsub, HISTORY_CHANNEL, _changed_profile)

    async def stop(self) -> None:
        await self._activity.stop()

    # --- the one writer --------------------------------------------------------------

    async def record_progress(self, viewer: Viewer, content_id: str, position: float, duration: float | None = None,
                              *, at_ms: int | None = None) -> dict[str, Any]:
        """Record where `viewer` is in a movie or an episode (from a playback heartbeat).

        The caller (playback) has already checked that the session is the viewer's; the
        content must exist. A duration of 0 or None falls back to the catalog's runtime.
        """
        title, episode = await self._catalog.resolve_content(content_id)
        title_id = str(title["_id"])
        at_ms = at_ms if at_ms is not None else to_ms(self._clock())
        known = (episode or title).get("runtime_s") or 0
        duration = float(duration) if duration and duration > 0 else float(known)
        position = max(0.0, float(position))
        if duration > 0:
            position = min(position, duration)
        completed = is_completed(position, duration)
        owner = {"user_id": viewer.user_id, "profile_id": viewer.profile_id, "title_id": title_id}
        place = {
            "content_id": content_id,
            "episode_id": str(episode["_id"]) if episode else None,
            "season_number": episode["season_number"] if episode else None,
            "episode_number": episode["number"] if episode else None,
            "position_s": position,
            "duration_s": duration,
            "completed": completed,
            "last_watched_ms": at_ms,
        }
        await self._history.write_content(
            viewer.profile_id, content_id, {**owner, **place},
            created={"created_at": from_ms(at_ms), "first_watched_ms": at_ms},
            finished_ms=at_ms if completed else None,
        )
        state, next_episode = "watching", None
        if completed:
            state = "finished"
            if episode is not None:
                next_episode = await self._catalog.next_episode(title_id, episode)
                if next_episode is not None:
                    state = "up_next"
        first = await self._history.write_title(
            viewer.profile_id, title_id,
            {**owner, **place, "state": state, "next_episode_id": str(next_episode["_id"]) if next_episode else None},
            created={"created_at": from_ms(at_ms), "first_watched_ms": at_ms},
        )
        self._activity.forget(viewer.profile_id)
        await self._pubsub.publish(HISTORY_CHANNEL, {"profile_id": viewer.profile_id})
        if first:
            await self._titles.record_view(title_id, from_ms(at_ms).strftime("%Y-%m-%d"))
        return {"content_id": content_id, "title_id": title_id, "position": position, "duration": duration,
                "completed": completed, "state": state,
                "next_episode_id": str(next_episode["_id"]) if next_episode else None}

    async def resume_position(self, profile_id: str, content_id: str) -> float:
        """Where playback should start: the saved position, or 0 once completed."""
        doc = await self._history.content(profile_id, content_id)
        if doc is None or bool(doc.get("completed")):
            return 0.0
        return float(doc.get("position_s", 0.0))

    # --- reading ---------------------------------------------------------------------

    async def history(self, viewer: Viewer, limit: int, cursor: str | None) -> dict[str, Any]:
        page = await self._history.page(viewer.profile_id, limit, cursor)
        cards = await self._catalog.any_cards({d["title_id"] for d in page.items})
        episodes = await self._catalog.episodes_by_ids({d["episode_id"] for d in page.items if d.get("episode_id")})
        items = []
        for doc in page.items:
            card = cards.get(doc["title_id"]) or {"id": doc["title_id"], "title": None}
            items.append({
                "content_id": doc["content_id"],
                "title": card,
                "episode": _episode_ref(episodes.get(doc.get("episode_id") or "")),
                "position": float(doc.get("position_s", 0.0)),
                "duration": float(doc.get("duration_s", 0.0)),
                "completed": bool(doc.get("completed")),
                "last_watched_at": iso(doc["last_watched_ms"]),
                "finished_at": iso(doc["finished_ms"]) if doc.get("finished_ms") else None,
            })
        return {"items": items, "next_cursor": page.next_cursor}

    async def activity(self, viewer: Viewer) -> list[dict[str, Any]]:
        """The profile's per-title progress rows, newest first, read once for a whole page
        (pass them to `continue_watching`, `started_titles` and `finished_titles`); from this
        process's cache, which the profile's own progress writes drop."""
        return await self._activity.load(viewer.profile_id, lambda: self._history.title_rows(viewer.profile_id))

    async def continue_watching(self, viewer: Viewer, limit: int = 20,
                                activity: list[dict[str, Any]] | None = None) -> Encoded:
        """Titles in progress, most recent first, as the row's JSON text: resume the same
        content, or start the next episode at 0 when the last one was completed.

        Made from `activity` (kept per profile), the cards visible now and the kept episodes,
        the text is kept per profile too and reused while every one of those is the very
        same object: a progress write, a title's change or one leaving the profile's sight
        gives a new one, so reuse never outlives what it was made of."""
        if activity is None:
            rows = await self._history.in_progress(viewer.profile_id, limit)
        else:
            rows = [r for r in activity if r.get("state") in ACTIVE_STATES][:limit]
        cards = await self._catalog.visible_cards(viewer, {r["title_id"] for r in rows})
        wanted = {r["next_episode_id"] if r["state"] == "up_next" else r.get("episode_id") for r in rows}
        episodes = await self._catalog.episodes_by_ids({e for e in wanted if e})
        inputs = (activity, limit, *(cards.get(r["title_id"]) for r in rows),
                  *(episodes.get(r["next_episode_id"] if r["state"] == "up_next" else r.get("episode_id") or "")
                    for r in rows))
        kept = self._rows_text.get(viewer.profile_id) if activity is not None else None
        if kept is not None and same_objects(kept[0], inputs):
            return kept[1]
        text = Encoded(encode(self._continue_items(rows, cards, episodes)))
        if activity is not None:
            self._rows_text.put(viewer.profile_id, (inputs, text))
        return text

    @staticmethod
    def _continue_items(rows: list[dict[str, Any]], cards: dict[str, Encoded],
                        episodes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        items = []
        for row in rows:
            card = cards.get(row["title_id"])
            if card is None:
                continue
            up_next = row["state"] == "up_next"
            episode = episodes.get(row["next_episode_id"] if up_next else (row.get("episode_id") or ""))
            if up_next and (episode is None or episode.get("status") != "published"):
                continue
            duration = float(episode.get("runtime_s") or 0) if up_next and episode else float(row["duration_s"])
            position = 0.0 if up_next else float(row["position_s"])
            items.append({
                "title": card,
                "content_id": str(episode["_id"]) if episode else row["content_id"],
                "episode": _episode_ref(episode),
                "position": position,
                "duration": duration,
                "progress": round(position / duration, 4) if duration > 0 else 0.0,
                "up_next": up_next,
                "last_watched_at": iso(row["last_watched_ms"]),
            })
        return items

    async def started_titles(self, viewer: Viewer, activity: list[dict[str, Any]] | None = None) -> dict[str, str]:
        """title id → state for every title this profile has started."""
        rows = activity if activity is not None else await self._history.started_titles(viewer.profile_id)
        return {d["title_id"]: d["state"] for d in rows}

    async def finished_titles(self, viewer: Viewer, title_ids: list[str],
                              activity: list[dict[str, Any]] | None = None) -> set[str]:
        if activity is not None:
            wanted = set(title_ids)
            return {d["title_id"] for d in activity if d.get("state") == "finished" and d["title_id"] in wanted}
        return await self._history.finished_titles(viewer.profile_id, title_ids)

    # --- watchlist -------------------------------------------------------------------

    async def add_to_watchlist(self, viewer: Viewer, title_id: str) -> None:
        """Announced titles too: the list is how their release finds its audience."""
        title_id = await self._catalog.listable_title(viewer, title_id)
        await self._watchlist.add(viewer.user_id, viewer.profile_id, title_id, self._clock())

    async def remove_from_watchlist(self, viewer: Viewer, title_id: str) -> None:
        await self._watchlist.remove(viewer.profile_id, title_id)

    async def watchlist(self, viewer: Viewer, limit: int, cursor: str | None) -> dict[str, Any]:
        """My list, newest first. A title that is no longer visible (archived, out of its
        window) is left out of the page but kept, so it comes back if it returns. An announced
        title is listed with its `publish_at`."""
        page = await self._watchlist.page(viewer.profile_id, limit, cursor)
        cards = await self._catalog.listed_cards(viewer, [d["title_id"] for d in page.items])
        items = []
        for d in page.items:
            if d["title_id"] not in cards:
                continue
            card, publish_at_ms = cards[d["title_id"]]
            item: dict[str, Any] = {"title": card, "added_at": iso(d["added_ms"])}
            if publish_at_ms is not None:
                item["publish_at"] = iso(publish_at_ms)
            items.append(item)
        return {"items": items, "next_cursor": page.next_cursor}

