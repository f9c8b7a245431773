"""Who hears about a release, and the fan-out that tells them.

The release listener only queues a durable job; the job notifies the followers in batches
of 1,000: for a new episode, the accounts that watched the series in the last 120 days,
and for either kind the accounts with the title on a watchlist. One notification per
account (not per profile), through the notification service, so preferences, quiet hours
and channels apply. Every id is derived from the release and the account, so a retried
job (a worker killed half-way) notifies nobody twice."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from server.catalog.releases import ContentReleased
from server.core.clock import now, to_ms
from server.notifications.inbox import NotificationService
from storage.catalog.history import HistoryRepository
from storage.catalog.watchlist import WatchlistRepository

log = logging.getLogger("nameless.releases")

JOB_KIND = "notifications.release"
BATCH = 1000
RECENT_MS = 120 * 86_400_000  # "watched an earlier episode in the last months"
MAX_AUDIENCE = 1_000_000  # a bound on one release's fan-out

Submit = Callable[[str, dict[str, Any]], Awaitable[Any]]
Progress = Callable[[float], Awaitable[None]]


class ReleaseNotifier:
    def __init__(self, history: HistoryRepository, watchlist: WatchlistRepository,
                 notifications: NotificationService, submit: Submit) -> None:
        self._history = history
        self._watchlist = watchlist
        self._notifications = notifications
        self._submit = submit

    async def __call__(self, event: ContentReleased) -> None:
        """The release listener: queue the fan-out (the publish never waits for it)."""
        await self._submit(JOB_KIND, event.as_dict())

    async def run(self, job: dict[str, Any], progress: Progress) -> dict[str, Any]:
        """The job: notify every follower once; returns how many were notified this run."""
        event = ContentReleased(**job["payload"])
        if event.kind == "episode":
            kind, title = "new_episode", f"New episode of {event.title}"
            body = f"Season {event.season}, episode {event.episode}: {event.episode_name or ''}".rstrip(": ")
            data = {"title_id": event.title_id, "episode_id": event.episode_id}
        else:
            kind, title, body = "release", f"{event.title} is out", "Now available to watch."
            data = {"title_id": event.title_id}
        key = f"release:{event.episode_id or event.title_id}"
        audience = await self.audience(event)
        written = 0
        for start in range(0, len(audience), BATCH):
            batch = audience[start:start + BATCH]
            written += len(await self._notifications.notify_many(batch, kind, title, body, data, key=key))
            await progress((start + len(batch)) / len(audience))
        log.info("release notified", extra={"title_id": event.title_id, "accounts": len(audience),
                                            "written": written, "kind": kind})
        return {"audience": len(audience), "notified": written}

    async def audience(self, event: ContentReleased) -> list[str]:
        since = to_ms(now()) - RECENT_MS
        seen: dict[str, None] = {}
        sources: list[AsyncIterator[str]] = [self._watchlist.accounts_following(event.title_id)]
        if event.kind == "episode":
            sources.insert(0, self._history.accounts_watching(event.title_id, since_ms=since))
        for source in sources:
            async for user_id in source:
                seen.setdefault(user_id, None)
                if len(seen) >= MAX_AUDIENCE:
                    log.warning("release audience truncated", extra={"title_id": event.title_id})
                    return list(seen)
        return list(seen)
