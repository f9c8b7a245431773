"""Who hears about a release: a new episode goes to every account that started the series,
one notification per account (not per profile), through the notification service, so
preferences and delivery channels apply.

A new title has no audience yet: viewers cannot see (so cannot list) a title before it is
published. When "coming soon" titles become listable, their watchlists are the audience."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from server.catalog.releases import ContentReleased
from server.notifications.inbox import NotificationService
from storage.catalog.history import HistoryRepository

log = logging.getLogger("nameless.releases")

MAX_AUDIENCE = 100_000  # a bound on one release's fan-out from one process


class ReleaseNotifier:
    def __init__(self, history: HistoryRepository, notifications: NotificationService) -> None:
        self._history = history
        self._notifications = notifications

    async def __call__(self, event: ContentReleased) -> None:
        if event.kind != "episode":
            return
        audience = self._history.accounts_watching(event.title_id)
        kind, title = "new_episode", f"New episode of {event.title}"
        body = f"Season {event.season}, episode {event.episode}: {event.episode_name or ''}".rstrip(": ")
        data = {"title_id": event.title_id, "episode_id": event.episode_id}
        sent = 0
        async for user_id in _distinct(audience):
            await self._notifications.notify(user_id, kind, title, body, data)
            sent += 1
            if sent >= MAX_AUDIENCE:
                log.warning("release audience truncated", extra={"title_id": event.title_id})
                break
        log.info("release notified", extra={"title_id": event.title_id, "accounts": sent, "kind": kind})


async def _distinct(ids: AsyncIterator[str]) -> AsyncIterator[str]:
    seen: set[str] = set()
    async for value in ids:
        if value not in seen:
            seen.add(value)
            yield value
