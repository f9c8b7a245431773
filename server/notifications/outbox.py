"""Queueing outgoing email and push. The delivery integrations (Mailchimp, FCM) work from
this outbox later; until then staff can see what was sent to whom (links with secrets are
never shown to staff)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.core.clock import iso
from storage.notifications.outbox import OutboxRepository


class Outbox:
    def __init__(self, repo: OutboxRepository, public_url: str) -> None:
        self._repo = repo
        self._public_url = public_url.rstrip("/") or "http://127.0.0.1:8000"

    def link(self, path: str) -> str:
        return self._public_url + path

    async def email(self, to: str, kind: str, subject: str, text: str, *, secret_link: str | None = None) -> None:
        await self.enqueue("email", to, kind, subject, text, secret_link=secret_link)

    async def enqueue(self, channel: str, to: str, kind: str, subject: str, text: str, *,
                      secret_link: str | None = None, data: dict[str, Any] | None = None) -> None:
        """One delivery for one channel (email to an address, push to a user's devices)."""
        doc: dict[str, Any] = {
            "channel": channel,
            "to": to,
            "kind": kind,
            "subject": subject,
            "text": text,
            "status": "pending",
            "attempts": 0,
            "data": data or {},
            "created_at": dt.datetime.now(dt.UTC),
        }
        if secret_link is not None:
            doc["secret_link"] = secret_link
        await self._repo.enqueue(doc)

    async def page(self, to: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        """Newest first, optionally to one address; a link carrying a secret is never shown."""
        page = await self._repo.page(to, limit, cursor)
        return {"items": [outbox_view(m) for m in page.items], "next_cursor": page.next_cursor}


def outbox_view(message: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(message["_id"]), "channel": message["channel"], "to": message["to"],
            "kind": message["kind"], "subject": message["subject"], "text": message["text"],
            "status": message["status"], "has_link": "secret_link" in message,
            "created_at": iso(message["created_at"])}
