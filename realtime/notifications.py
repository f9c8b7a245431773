"""Namespace `/`: the user's own channel across all their devices (notifications,
subscription updates, session revocations)."""

from __future__ import annotations

from realtime.events import Ack, event, ok
from realtime.gateway import AuthedNamespace, Gateway, user_room
from server.core.permissions import Principal
from server.notifications.inbox import NotificationService, ReadBody


class UserChannel(AuthedNamespace):
    def __init__(self, gateway: Gateway, notifications: NotificationService) -> None:
        super().__init__("/", gateway)
        self.notifications = notifications

    async def joined(self, sid: str, principal: Principal) -> None:
        await self.gateway.sio.enter_room(sid, user_room(principal.user_id), namespace=self.namespace)

    @event("notifications.read", ReadBody)
    async def on_notifications_read(self, sid: str, principal: Principal, payload: ReadBody) -> Ack:
        updated = await self.notifications.mark_read(principal.user_id, None if payload.all else payload.ids)
        return ok(updated=updated)

    @event("notifications.unread")
    async def on_notifications_unread(self, sid: str, principal: Principal, payload: object) -> Ack:
        return ok(unread=await self.notifications.unread_count(principal.user_id))
