"""Namespace `/`: the user's own channel across all their devices (notifications,
announcements, subscription updates, session revocations).

A device may connect with `auth.last_notification_id`, the last notification it saw: it
is first sent, in order, what it missed from the inbox, and a live notification arriving
meanwhile waits behind them. Live notifications reach this process over the feed and go
to each of the user's sockets here; for `REPLAYED_KEPT_S` after a catch-up, a live copy of
one already sent from the inbox is dropped, so each arrives once. Active announcements
are sent once when a device connects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.events import Ack, event, ok
from realtime.gateway import AuthedNamespace, Gateway, user_room
from server.core.ids import valid_id
from server.core.permissions import Principal
from server.notifications.announcements import ANNOUNCEMENTS_ROOM, AnnouncementService, announcement_event
from server.notifications.feed import NotificationFeed
from server.notifications.inbox import NotificationService, ReadBody

log = logging.getLogger("nameless.realtime")

REPLAYED_KEPT_S = 30.0


class UserChannel(AuthedNamespace):
    def __init__(self, gateway: Gateway, notifications: NotificationService, feed: NotificationFeed,
                 announcements: AnnouncementService) -> None:
        super().__init__("/", gateway)
        self.notifications = notifications
        self.feed = feed
        self.announcements = announcements
        self._offsets: dict[str, str] = {}
        self._held: dict[str, list[dict[str, Any]]] = {}  # sid -> live notifications waiting behind a catch-up
        self._replayed: dict[str, tuple[float, set[str]]] = {}  # sid -> (until, ids sent from the inbox)
        self._joining: dict[str, tuple[str, str | None]] = {}  # sid -> (user, offset) until `connected`
        self._unsubscribe: list[Callable[[], Awaitable[None]]] = []

    async def start(self) -> None:
        self._unsubscribe = [await self.feed.subscribe(self._on_live),
                             await self.announcements.subscribe(self._on_announcement)]

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            await unsubscribe()
        self._unsubscribe = []

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        offset = valid_id(auth.get("last_notification_id")) if isinstance(auth, dict) else None
        if offset is not None:
            self._offsets[sid] = offset
        try:
            await super().on_connect(sid, environ, auth)
        finally:
            if self.gateway.connections.principal(self.namespace, sid) is None:
                self._offsets.pop(sid, None)
                self._joining.pop(sid, None)
                self._held.pop(sid, None)

    async def joined(self, sid: str, principal: Principal) -> None:
        # Before any await: from its registration on, a live notification for this socket
        # must wait behind the catch-up, or the catch-up would send it a second time.
        self._held[sid] = []
        self._joining[sid] = (principal.user_id, self._offsets.pop(sid, None))
        await self.gateway.sio.enter_room(sid, user_room(principal.user_id), namespace=self.namespace)
        await self.gateway.sio.enter_room(sid, ANNOUNCEMENTS_ROOM, namespace=self.namespace)

    async def connected(self, sid: str) -> None:
        joining = self._joining.pop(sid, None)
        if joining is not None:
            await self._catch_up(sid, *joining)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._held.pop(sid, None)
        self._replayed.pop(sid, None)
        self._offsets.pop(sid, None)
        self._joining.pop(sid, None)
        await super().on_disconnect(sid, reason)

    async def _catch_up(self, sid: str, user_id: str, offset: str | None) -> None:
        try:
            sent: set[str] = set()
            if offset is not None:
                for item in await self.notifications.missed(user_id, offset):
                    await self.gateway.emit_to_socket(sid, "notification", item)
                    sent.add(item["id"])
            for doc in reversed(await self.announcements.active_for(user_id)):
                await self.gateway.emit_to_socket(sid, "announcement", announcement_event(doc))
            while self._held.get(sid):
                item = self._held[sid].pop(0)
                if item["id"] not in sent:
                    await self.gateway.emit_to_socket(sid, "notification", item)
            if sent and sid in self._held:
                self._replayed[sid] = (time.monotonic() + REPLAYED_KEPT_S, sent)
        except Exception:
            log.warning("socket catch-up failed; the inbox still has everything", exc_info=True)
        finally:
            # Anything still held was not sent; the inbox has it.
            self._held.pop(sid, None)

    async def _on_live(self, message: dict[str, Any]) -> None:
        user_id, data = message.get("user_id"), message.get("data")
        if not isinstance(user_id, str) or not isinstance(data, dict) or message.get("event") != "notification":
            return
        for (namespace, sid), _ in self.gateway.connections.of_user(user_id):
            if namespace != self.namespace:
                continue
            held = self._held.get(sid)
            if held is not None:
                held.append(data)
                continue
            replayed = self._replayed.get(sid)
            if replayed is not None:
                if replayed[0] < time.monotonic():
                    del self._replayed[sid]
                elif data.get("id") in replayed[1]:
                    continue
            await self.gateway.emit_to_socket(sid, "notification", data)

    async def _on_announcement(self, message: dict[str, Any]) -> None:
        """A plan's announcement: this process sends it to the plan's viewers it holds."""
        audience, data = message.get("audience"), message.get("event")
        if not isinstance(audience, str) or audience == "all" or not isinstance(data, dict):
            return
        here = self.gateway.connections.users(self.namespace)
        if not here:
            return
        for user_id in await self.announcements.audience_of(audience, here):
            for (namespace, sid), _ in self.gateway.connections.of_user(user_id):
                if namespace == self.namespace:
                    await self.gateway.emit_to_socket(sid, "announcement", data)

    @event("notifications.read", ReadBody)
    async def on_notifications_read(self, sid: str, principal: Principal, payload: ReadBody) -> Ack:
        updated = await self.notifications.mark_read(principal.user_id, None if payload.all else payload.ids)
        return ok(updated=updated)

    @event("notifications.unread")
    async def on_notifications_unread(self, sid: str, principal: Principal, payload: object) -> Ack:
        return ok(unread=await self.notifications.unread_count(principal.user_id))
