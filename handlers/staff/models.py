"""What the user administration and audit endpoints reply."""

from __future__ import annotations

import datetime as dt
from typing import Any

from handlers.models import Account, Page, Reply
from handlers.notifications.models import Notification


class Accounts(Page[Account]):
    pass


class NoticeSent(Reply):
    delivered_in_app: bool
    notification: Notification | None


class AuditEntry(Reply):
    id: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    ip: str | None
    at: dt.datetime


class AuditPage(Page[AuditEntry]):
    pass
