"""Notifications: written durably to the user's inbox first, then emitted live to every
device of the user, and queued for push and email per the user's preferences.

A client that was offline reads what it missed from the inbox; a notification that was
acknowledged as created is never lost because the live emit only follows the write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any, Protocol

from pydantic import Field, model_validator

from server.core import errors
from server.core.clock import iso, now, to_ms
from server.core.fields import Body, Id
from server.core.ids import new_id
from server.core.permissions import Principal
from server.notifications.outbox import Outbox
from server.notifications.quiet_hours import QuietHours, held_until_ms
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
ALWAYS_EMAILED = ("account", "billing")  # never silenced by a marketing opt-out
MARKETING_KINDS = ("new_episode", "release", "promotions")
TOPIC_KINDS = ("release", "promotions")  # broadcast as FCM topics of the same names
URGENT = frozenset({"account", "billing", "support"})  # not held by quiet hours


def derived_id(*parts: str) -> str:
    """An id (24 hex digits, like every id) that is the same whenever the same parts are."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def preference_matrix(stored: dict[str, Any] | None) -> dict[str, dict[str, bool]]:
    matrix = {kind: dict(channels) for kind, channels in DEFAULTS.items()}
    for kind, channels in ((stored or {}).get("matrix") or {}).items():
        if kind in matrix:
            matrix[kind].update({c: bool(v) for c, v in channels.items() if c in CHANNELS})
    for kind in ALWAYS_EMAILED:
        matrix[kind]["email"] = True
    return matrix


def _deliveries(nid: str, user_id: str, email: str | None, channels: list[str], kind: str, title: str, body: str,
                data: dict[str, Any] | None, quiet: dict[str, Any] | None, at: dt.datetime) -> list[dict[str, Any]]:
    """The outbox records of one notification, with ids derived from it."""
    out = []
    for channel in channels:
        due = held_until_ms(quiet, at) if channel == "push" and kind not in URGENT else None
        doc = Outbox.delivery(channel, user_id if channel == "push" else str(email), kind, title, body,
                              user_id=user_id, data=data, delivery_id=derived_id(nid, channel), due_ms=due)
        doc["notification_id"] = nid
        out.append(doc)
    return out


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
        return preference_matrix(await self._repo.preferences(user_id))

    async def settings(self, user_id: str) -> dict[str, Any]:
        """The per-kind matrix and the quiet hours, as `GET /me/notification-preferences` shows them."""
        stored = await self._repo.preferences(user_id)
        return {"preferences": preference_matrix(stored), "quiet_hours": (stored or {}).get("quiet_hours")}

    async def update_preferences(self, user_id: str, changes: dict[str, dict[str, bool]]) -> dict[str, Any]:
        for kind in ALWAYS_EMAILED:
            if changes.get(kind, {}).get("email") is False:
                raise errors.ValidationFailed(f"{kind} email cannot be turned off: it carries what the account needs.",
                                              details={"field": f"{kind}.email"})
        matrix = await self.preferences(user_id)
        for kind, channels in changes.items():
            matrix[kind].update(channels)
        await self._repo.save_preferences(user_id, matrix)
        if any("email" in channels for kind, channels in changes.items() if kind in MARKETING_KINDS):
            await self._sync_member(user_id)
        if any("push" in channels for kind, channels in changes.items() if kind in TOPIC_KINDS):
            await self._outbox.sync_topics(user_id)
        return matrix

    async def _sync_member(self, user_id: str) -> None:
        user = await self._users.get(user_id)
        if user is not None and user.get("email"):
            await self._outbox.sync_member(user_id, user["email"])

    async def set_quiet_hours(self, user_id: str, quiet: QuietHours | None) -> None:
        await self._repo.save_quiet_hours(user_id, quiet.model_dump() if quiet is not None else None)

    async def email_unsubscribed(self, user_id: str) -> None:
        """The member unsubscribed at Mailchimp: marketing kinds stop emailing; account and
        billing email does not (it is not marketing)."""
        matrix = await self.preferences(user_id)
        for kind in MARKETING_KINDS:
            matrix[kind]["email"] = False
        await self._repo.save_preferences(user_id, matrix)
        await self._sync_member(user_id)

    async def broadcast(self, principal: Principal, kind: str, title: str, body: str, channels: list[str],
                        ip: str) -> str:
        """A message to everyone who opted in to `kind`: an FCM topic message (devices are
        subscribed to the topics of the kinds their owner takes as push) and a Mailchimp
        campaign to the members tagged `email:<kind>`. Queued in the outbox like the rest."""
        broadcast_id = new_id()
        docs = []
        if "push" in channels:
            docs.append(Outbox.delivery("topic", kind, kind, title, body, delivery_id=derived_id(broadcast_id, "push")))
        if "email" in channels:
            docs.append(Outbox.delivery("campaign", f"email:{kind}", kind, title, body,
                                        delivery_id=derived_id(broadcast_id, "email")))
        await self._outbox.enqueue_many(docs)
        await self._audit.record(principal, "notifications.broadcast", target_type="broadcast",
                                 target_id=broadcast_id, ip=ip, details={"kind": kind, "channels": channels})
        return broadcast_id

    async def email_unsubscribed_address(self, email: str) -> None:
        user = await self._users.by_email(email.strip().lower())
        if user is not None:
            await self.email_unsubscribed(str(user["_id"]))

    async def notify(self, user_id: str, kind: str, title: str, body: str,
                     data: dict[str, Any] | None = None, *, key: str | None = None) -> dict[str, Any] | None:
        """Deliver one notification on every channel the user wants; returns the inbox entry.

        The inbox entry is written first, marked until its push and email deliveries are in
        the outbox (a sweep queues them if the process stops in between). A `key` (what the
        notification is about) derives every id, so a repeated call sends nothing twice."""
        sent = await self.notify_many([user_id], kind, title, body, data, key=key)
        return sent[0] if sent else None

    async def notify_many(self, user_ids: list[str], kind: str, title: str, body: str,
                          data: dict[str, Any] | None = None, *, key: str | None = None) -> list[dict[str, Any]]:
        """One notification to each of a batch of users, in a handful of writes (the
        release fan-out); the inbox entries written by this call."""
        if kind not in KINDS:
            raise ValueError(f"unknown notification kind {kind!r}")
        stored = await self._repo.preferences_of(user_ids)
        at = now()
        created_ms = to_ms(at)
        plans = []
        for user_id in user_ids:
            prefs = preference_matrix(stored.get(user_id))[kind]
            nid = derived_id(key, user_id) if key else new_id()
            plans.append((user_id, nid, prefs, (stored.get(user_id) or {}).get("quiet_hours")))
        wants_email = [u for u, _, p, _ in plans if p["email"]]
        emails = await self._users.emails(wants_email) if wants_email else {}
        # Most followers of a release may have no phone: they get no push delivery at all.
        phones = await self._repo.users_with_devices([u for u, _, p, _ in plans if p["push"]])
        reachable = {"push": phones, "email": emails}
        docs, direct, queued = [], [], {}
        for user_id, nid, prefs, quiet in plans:
            channels = [c for c in ("push", "email") if prefs[c] and user_id in reachable[c]]
            deliveries = _deliveries(nid, user_id, emails.get(user_id), channels, kind, title, body, data, quiet, at)
            if not prefs["in_app"]:
                direct.extend(deliveries)
                continue
            queued[nid] = deliveries
            docs.append({"_id": nid, "user_id": user_id, "kind": kind, "title": title, "body": body,
                         "data": data or {}, "read": False, "created_ms": created_ms,
                         "delivery_pending": bool(deliveries), "deliver": channels})
        written = await self._repo.insert_many(docs)  # a repeated call writes (and sends) none again
        for doc in written:
            await self._emit(doc)
            direct.extend(queued[doc["_id"]])
        queued_for = [d["_id"] for d in written if d["delivery_pending"]]
        await self._outbox.enqueue_many(direct)
        await self._repo.delivery_queued(queued_for)
        return [notification_view(d) for d in written]

    async def queue_stragglers(self, older_than_ms: int = 30_000, limit: int = 500) -> int:
        """Queue the deliveries of notifications stored by a process that stopped before it
        queued them (derived ids: ones already queued are not queued twice)."""
        docs = await self._repo.awaiting_delivery(to_ms(now()) - older_than_ms, limit)
        if not docs:
            return 0
        stored = await self._repo.preferences_of([d["user_id"] for d in docs])
        emails = await self._users.emails([d["user_id"] for d in docs if "email" in (d.get("deliver") or [])])
        deliveries = []
        for d in docs:
            quiet = (stored.get(d["user_id"]) or {}).get("quiet_hours")
            channels = [c for c in d.get("deliver") or [] if c != "email" or d["user_id"] in emails]
            deliveries.extend(_deliveries(d["_id"], d["user_id"], emails.get(d["user_id"]), channels, d["kind"],
                                          d["title"], d["body"], d.get("data"), quiet, now()))
        await self._outbox.enqueue_many(deliveries)
        await self._repo.delivery_queued([d["_id"] for d in docs])
        return len(docs)

    async def _emit(self, doc: dict[str, Any]) -> None:
        try:
            await self._live.emit_to_user(doc["user_id"], "notification", notification_event(notification_view(doc)))
        except Exception:  # the inbox has it; the device catches up on reconnect
            log.warning("live notification emit failed", exc_info=True)

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
                await self._outbox.sync_topics(principal.user_id)
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
