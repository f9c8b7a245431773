"""Queueing outgoing email. The email integration delivers from this outbox later; until
then staff can see what was sent to whom (links with secrets are never shown to staff)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from storage.outbox import OutboxRepository


class Outbox:
    def __init__(self, repo: OutboxRepository, public_url: str) -> None:
        self._repo = repo
        self._public_url = public_url.rstrip("/") or "http://127.0.0.1:8000"

    def link(self, path: str) -> str:
        return self._public_url + path

    async def email(self, to: str, kind: str, subject: str, text: str, *, secret_link: str | None = None) -> None:
        doc: dict[str, Any] = {
            "channel": "email",
            "to": to,
            "kind": kind,
            "subject": subject,
            "text": text,
            "status": "pending",
            "attempts": 0,
            "created_at": dt.datetime.now(dt.UTC),
        }
        if secret_link is not None:
            doc["secret_link"] = secret_link
        await self._repo.enqueue(doc)
