"""Notifications: written durably to the user's inbox first, then emitted live to every
device of the user, and queued for push and email per the user's preferences.

A client that was offline reads what it missed from the inbox; a notification that was
acknowledged as created is never lost because the live emit only follows the write.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from pydantic import Field, model_validator

from server.core import errors
from server.core.clock import iso, now, to_ms
from server.core.fields import Body, Id
from server.core.permissions import Principal
from server.notifications.outbox import Outbox
from server.staff.audit import AuditLog
from storage.identity.sessions import SessionRepository
from storage.identity.users import UserRepository
from storage.notifications.inbox import NotificationRepository

log = logging.getLogger(__name__)

KINDS = ("new_episode", "release", "billing", "promotions", "account", "support")
CHANNELS = ("push", "email", "in_app")
MISSED_LIMIT = 200  # a device reconnecting after longer reads the rest from the inbox
DEFAULTS: dict[str, dict[str, bool]] = {
    kind: {"push": kind != "promotions", "email": kind in ("billing", "account"), "in_app": True} for kind in KINDS
}


class ReadBody(Body):
    """Mark some notifications read (`ids`) or all of them (`all: true`)."""

    ids: list[Id] | None = Field(default=None, max_length=500)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> ReadBody:
        if (self.ids is None) == (not self.all):
            raise ValueError("send either ids or all: true")
        return self


class LiveEmitter(Protocol):
    async def emit_to_user(self, user_id: str, event: str, data: Any) -> None: ...


def notification_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "kind": doc["kind"],
        "title": doc["title"],
        "body": doc["body"],
        "data": doc.get("data") or {},
        "read": bool(doc.get("read")),
        "created_ms": doc["created_ms"],
        "created_at": iso(doc["created_ms"]),
    }


def notification_event(view: dict[str, Any]) -> dict[str, Any]:
    """What the `notification` socket event carries."""
    return {k: view[k] for k in ("id", "kind", "title", "body", "data", "created_ms")}


class NotificationService:
    def __init__(self, repo: NotificationRepository, users: UserRepository, outbox: Outbox,
                 live: LiveEmitter, sessions: SessionRepository, audit: AuditLog) -> None:
        self._repo = repo
        self._users = users
        self._outbox = outbox
        self._live = live
        self._sessions = sessions
        self._audit = audit

    async def preferences(self, user_id: str) -> dict[str, dict[str, bool]]:
        stored = await self._repo.preferences(user_id)
        matrix = {kind: dict(channels) for kind, channels in DEFAULTS.items()}
        for kind, channels in ((stored or {}).get("matrix") or {}).items():
            if kind in matrix:
                matrix[kind].update({c: bool(v) for c, v in channels.items() if c in CHANNELS})
        return matrix

    async def update_preferences(self, user_id: str, changes: dict[str, dict[str, bool]]) -> dict[str, Any]:
        matrix = await self.preferences(user_id)
        for kind, channels in changes.items():
            matrix[kind].update(channels)
        await self._repo.save_preferences(user_id, matrix)
        return matrix

    async def notify(self, user_id: str, kind: str, title: str, body: str,
                     data: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Deliver one notification on every channel the user wants; returns the inbox entry."""
        if kind not in KINDS:
            raise ValueError(f"unknown notification kind {kind!r}")
        prefs = (await self.preferences(user_id))[kind]
        view = None
        if prefs["in_app"]:
            doc = await self._repo.insert({
                "user_id": user_id, "kind": kind, "title": title, "body": body, "data": data or {},
                "read": False, "created_ms": to_ms(now()),
            })
            view = notification_view(doc)
            try:
                await self._live.emit_to_user(user_id, "notification", notification_event(view))
            except Exception:  # the inbox has it; the device catches up on reconnect
                log.warning("live notification emit failed", exc_info=True)
        if prefs["push"]:
            await self._outbox.enqueue("push", user_id, kind, title, body, data=data)
        if prefs["email"]:
            user = await self._users.get(user_id)
            if user is not None:
                await self._outbox.enqueue("email", user["email"], kind, title, body, data=data)
        return view

    async def inbox(self, user_id: str, unread_only: bool, limit: int, cursor: str | None) -> dict[str, Any]:
        """One page of the inbox, newest first, with the unread count the badge shows."""
        page = await self._repo.page(user_id, unread_only, limit, cursor)
        return {"items": [notification_view(d) for d in page.items], "next_cursor": page.next_cursor,
                "unread_count": await self.unread_count(user_id)}

    async def missed(self, user_id: str, after_id: str) -> list[dict[str, Any]]:
        """What a device that last saw `after_id` has not been sent, oldest first."""
        docs = await self._repo.after(user_id, after_id, MISSED_LIMIT)
        return [notification_event(notification_view(doc)) for doc in docs]

    async def unread_count(self, user_id: str) -> int:
        return await self._repo.unread_count(user_id)

    async def mark_read(self, user_id: str, ids: list[str] | None) -> int:
        return await self._repo.mark_read(user_id, ids, to_ms(now()))

    async def register_device(self, principal: Principal, push_token: str, platform: str, ip: str) -> None:
        """Register or refresh this device's push token for the caller.

        A token another account holds moves only when the session that registered it has
        ended (that account signed out of the device, or was signed out): knowing a token
        is no proof of holding the device, but the app signing out and the next account
        signing in is. The previous registration then ends, and the audit log says so.
        """
        for _ in range(3):
            current = await self._repo.device(push_token)
            at_ms = to_ms(now())
            moved = current is not None and current["user_id"] != principal.user_id
            if moved and not await self._registration_ended(current, principal.session_id):
                raise errors.Conflict(
                    "This device is registered to another account that is still signed in on it; "
                    "sign that account out of the device first.",
                    code="device_registered_elsewhere",
                )
            keep = current is not None and not moved
            device = {"_id": push_token, "user_id": principal.user_id, "session_id": principal.session_id,
                      "platform": platform, "registered_ms": current["registered_ms"] if keep and
                      "registered_ms" in current else at_ms, "updated_ms": at_ms}
            if await self._repo.put_device(device, current):
                if moved:
                    await self._audit.record(principal, "notifications.device_moved", target_type="user",
                                             target_id=current["user_id"], ip=ip,
                                             details={"platform": current.get("platform"),
                                                      "to_user_id": principal.user_id})
                return
        raise errors.Conflict("This device's registration is changing; try again.", code="device_busy")

    async def _registration_ended(self, device: dict[str, Any], session_id: str) -> bool:
        registered_by = device.get("session_id")
        if registered_by is None:  # registered before sessions were recorded: a later sign-in will do
            mine = await self._sessions.get(session_id)
            return mine is not None and to_ms(mine["created_at"]) > device["updated_ms"]
        session = await self._sessions.get(registered_by)
        return session is None or session.get("revoked_ms") is not None or session["expires_at"] <= now()

    async def remove_device(self, user_id: str, push_token: str) -> None:
        if not await self._repo.delete_device(user_id, push_token):
            raise errors.NotFound("No such device.", code="device_not_found")
