"""The "content released" event: raised when a title or an episode becomes visible, by the
scheduled publish job or by a content manager publishing at once.

Whoever cares (notifications) subscribes a listener; publishers only know the `Protocol`.
Delivery is in-process and at most once per release: the publish itself is a conditional
update that exactly one process wins, and that process emits. A listener that needs the
event elsewhere (other processes, push, email) persists or relays it itself.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

log = logging.getLogger("nameless.releases")


@dataclass(frozen=True)
class ContentReleased:
    kind: Literal["title", "episode"]
    title_id: str
    title: str  # the title's name, for the notification text
    released_ms: int
    episode_id: str | None = None
    season: int | None = None
    episode: int | None = None
    episode_name: str | None = None
    scheduled: bool = True  # False when a content manager published at once

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReleaseListener(Protocol):
    async def __call__(self, event: ContentReleased) -> None: ...


class ReleaseEvents:
    """Fan-out to every subscribed listener; one failing listener does not stop the others."""

    def __init__(self) -> None:
        self._listeners: list[ReleaseListener] = []

    def subscribe(self, listener: ReleaseListener) -> None:
        self._listeners.append(listener)

    async def emit(self, event: ContentReleased) -> None:
        for listener in list(self._listeners):
            try:
                await listener(event)
            except Exception:
                log.exception("release listener failed", extra={"title_id": event.title_id})
