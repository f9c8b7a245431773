"""The scheduled release: publish titles and episodes whose `publish_at` has passed and
announce each release through the listener given (notifications subscribe to it).

    released = await run_once(content_admin_service, release_events.emit)

`PublishScheduler` runs that every `interval_s` seconds in the serving process.
"""

from __future__ import annotations

import logging

from jobs.periodic import Periodic
from server.catalog.admin import ContentAdminService
from server.catalog.releases import ContentReleased, ReleaseListener

log = logging.getLogger("nameless.jobs.publish")

DEFAULT_INTERVAL_S = 15.0


async def run_once(content: ContentAdminService, emit: ReleaseListener, *,
                   now_ms: int | None = None) -> list[ContentReleased]:
    """One pass; returns what was released (already emitted). A listener's failure is
    logged and does not undo or repeat the publish."""
    released = await content.publish_due(now_ms)
    for event in released:
        try:
            await emit(event)
        except Exception:
            log.exception("release listener failed", extra={"title_id": event.title_id})
    if released:
        log.info("released", extra={"count": len(released)})
    return released


class PublishScheduler(Periodic):
    def __init__(self, content: ContentAdminService, emit: ReleaseListener,
                 interval_s: float = DEFAULT_INTERVAL_S) -> None:
        super().__init__("publish_scheduled", interval_s, lambda: run_once(content, emit))
