"""Queueing outgoing email and push. The delivery worker (`server.notifications.delivery`)
sends from this outbox through FCM and Mailchimp; staff can see what was sent to whom.

A message that carries a secret link (email verification, password reset) is queued with
the link's purpose and user only: no document holds a usable token. The link's token is
issued when the message is rendered for sending (`Outbox.render`), by the domain that
registered that purpose, so the only copy of the secret is the one handed to the delivery
step (docs/notifications.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from server.core import errors
from server.core.clock import iso, now, to_ms
from server.core.ids import new_id
from storage.notifications.outbox import OutboxRepository

# (user_id, requested_at) -> a fresh single-use token, or None when the request no longer
# deserves one (too old, account gone or already done).
LinkIssuer = Callable[[str, dt.datetime], Awaitable[str | None]]


@dataclass(frozen=True)
class RenderedMessage:
    """What a delivery integration sends: built at send time, never stored."""

    id: str
    channel: str
    to: str
    kind: str
    subject: str
    text: str
    link: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Outbox:
    def __init__(self, repo: OutboxRepository, public_url: str) -> None:
        self._repo = repo
        self._public_url = public_url.rstrip("/") or "http://127.0.0.1:8000"
        self._links: dict[str, tuple[str, LinkIssuer]] = {}
        self._listeners: list[Callable[[], None]] = []

    def listen(self, wake: Callable[[], None]) -> None:
        """`wake` is called after each enqueue, so this process's worker sends at once."""
        self._listeners.append(wake)

    def _queued(self) -> None:
        for wake in self._listeners:
            wake()

    def link(self, path: str) -> str:
        return self._public_url + path

    def register_link(self, purpose: str, path: str, issuer: LinkIssuer) -> None:
        """Messages queued with `link_purpose=purpose` get `path?token=<issuer's token>` when rendered."""
        self._links[purpose] = (path, issuer)

    async def email(self, to: str, kind: str, subject: str, text: str, *,
                    link_purpose: str | None = None, user_id: str | None = None) -> None:
        await self.enqueue("email", to, kind, subject, text, link_purpose=link_purpose, user_id=user_id)

    async def enqueue(self, channel: str, to: str, kind: str, subject: str, text: str, *,
                      link_purpose: str | None = None, user_id: str | None = None,
                      data: dict[str, Any] | None = None, delivery_id: str | None = None,
                      due_ms: int | None = None) -> bool:
        """One delivery for one channel (email to an address, push to a user's devices).
        A `delivery_id` derived from what it is for makes a repeated call a no-op (False)."""
        doc = self.delivery(channel, to, kind, subject, text, user_id=user_id, data=data,
                            delivery_id=delivery_id, due_ms=due_ms)
        if link_purpose is not None:
            if link_purpose not in self._links or user_id is None:
                raise ValueError(f"no link issuer for {link_purpose!r} (or no user)")
            doc["link"] = {"purpose": link_purpose, "user_id": user_id}
        queued = await self._repo.enqueue(doc)
        self._queued()
        return queued

    async def sync_member(self, user_id: str, email: str) -> None:
        """Bring the address's Mailchimp member in step with the account (verified, marketing
        preferences, plan); the state is read when the record is sent, so the latest wins."""
        await self.enqueue("audience", email, "account", "audience", "", user_id=user_id)

    async def sync_topics(self, user_id: str) -> None:
        """Subscribe the user's devices to the FCM topics of the kinds they take as push
        (and unsubscribe from the others), as the preferences are when it is sent."""
        await self.enqueue("topics", user_id, "account", "topics", "", user_id=user_id)

    async def enqueue_many(self, docs: list[dict[str, Any]]) -> int:
        """Deliveries built with `delivery`, queued in one write (those already queued are left)."""
        queued = await self._repo.enqueue_many(docs)
        if queued:
            self._queued()
        return queued

    @staticmethod
    def delivery(channel: str, to: str, kind: str, subject: str, text: str, *, user_id: str | None = None,
                 data: dict[str, Any] | None = None, delivery_id: str | None = None,
                 due_ms: int | None = None) -> dict[str, Any]:
        created = dt.datetime.now(dt.UTC)
        return {
            "_id": delivery_id or new_id(),
            "channel": channel,
            "to": to,
            "user_id": user_id if user_id is not None else (to if channel == "push" else None),
            "kind": kind,
            "subject": subject,
            "text": text,
            "status": "pending",
            "attempts": 0,
            "data": data or {},
            "created_at": created,
            "due_ms": due_ms if due_ms is not None else to_ms(created),
            "lease_until_ms": 0,
            "done_tokens": [],
        }

    async def render(self, message: dict[str, Any]) -> RenderedMessage | None:
        """The message as it is sent now, its secret link (if any) issued by this call.

        The delivery step calls this right before handing the message to its provider and
        keeps the result only in memory. Each call issues a new token (a reset link also
        ends the earlier ones). None: the message is no longer worth sending (its link's
        request expired or was settled); mark it so instead of sending it.
        """
        link = None
        text = message["text"]
        spec = message.get("link")
        if spec is not None:
            path, issuer = self._links[spec["purpose"]]
            token = await issuer(spec["user_id"], message["created_at"])
            if token is None:
                return None
            link = f"{self.link(path)}?token={token}"
            text = f"{text}\n\n{link}"
        return RenderedMessage(
            id=str(message["_id"]), channel=message["channel"], to=message["to"], kind=message["kind"],
            subject=message["subject"], text=text, link=link, data=dict(message.get("data") or {}),
        )

    async def retry(self, delivery_id: str) -> None:
        """Send a dead or unconfirmed delivery again (staff decide; an unconfirmed push may
        then reach the device twice, shown once where the platform collapses by id)."""
        if not await self._repo.requeue(delivery_id, to_ms(now())):
            if await self._repo.get(delivery_id) is None:
                raise errors.NotFound("No such delivery.", code="delivery_not_found")
            raise errors.Conflict("Only dead or unconfirmed deliveries can be retried.", code="delivery_not_retryable")

    async def forget_stored_links(self) -> None:
        """Messages queued before links were issued at send time kept a usable link: drop it."""
        await self._repo.drop_field("secret_link")

    async def page(self, to: str | None, limit: int, cursor: str | None,
                   status: str | None = None) -> dict[str, Any]:
        """Newest first, optionally to one address or in one state (staff look for `dead`)."""
        page = await self._repo.page(to, status, limit, cursor)
        return {"items": [outbox_view(m) for m in page.items], "next_cursor": page.next_cursor}


def outbox_view(message: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(message["_id"]), "channel": message["channel"], "to": message["to"],
            "kind": message["kind"], "subject": message["subject"], "text": message["text"],
            "status": message["status"], "has_link": "link" in message, "attempts": message.get("attempts", 0),
            "error": message.get("error"), "created_at": iso(message["created_at"])}
