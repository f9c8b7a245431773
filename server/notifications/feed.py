"""Live notifications to every process: each one is published once, and the process
holding a device of the user delivers it to that device's socket.

Going through each process rather than a Socket.IO room lets the process deliver per
socket: a device that reconnects with the last notification it saw is first sent what it
missed from the inbox, and live ones arriving meanwhile wait behind it (realtime.notifications).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from storage.state.pubsub import PubSub

NOTIFICATIONS_CHANNEL = "notifications.live"  # {"user_id", "event", "data"}


class NotificationFeed:
    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def emit_to_user(self, user_id: str, event: str, data: Any) -> None:
        await self._pubsub.publish(NOTIFICATIONS_CHANNEL, {"user_id": user_id, "event": event, "data": data})

    async def subscribe(self, handler: Callable[[dict[str, Any]], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        return await self._pubsub.subscribe(NOTIFICATIONS_CHANNEL, handler)
