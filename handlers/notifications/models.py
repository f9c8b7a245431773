"""What the inbox, preference and outbox endpoints reply."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from handlers.models import Page, Reply
from server.notifications.inbox import KINDS

NotificationKind = Literal[KINDS]  # type: ignore[valid-type]


class Notification(Reply):
    id: str
    kind: NotificationKind
    title: str
    body: str
    data: dict[str, Any]
    read: bool
    created_ms: int = Field(description="milliseconds since the epoch, as live events carry it")
    created_at: dt.datetime


class Inbox(Page[Notification]):
    unread_count: int


class MarkedRead(Reply):
    updated: int = Field(description="notifications that were unread until now")


class Channels(Reply):
    push: bool
    email: bool
    in_app: bool


class PreferenceMatrix(Reply):
    new_episode: Channels
    release: Channels
    billing: Channels
    promotions: Channels
    account: Channels
    support: Channels


class QuietHoursView(Reply):
    start: str = Field(description="HH:MM, local time")
    end: str
    time_zone: str = Field(description="IANA time zone")


class Preferences(Reply):
    preferences: PreferenceMatrix
    quiet_hours: QuietHoursView | None = Field(
        default=None, description="non-urgent pushes are held until the window ends")


class BroadcastQueued(Reply):
    id: str = Field(description="the broadcast (its deliveries are in the outbox)")


class WebhookAccepted(Reply):
    received: bool


class OutboxMessage(Reply):
    id: str
    channel: Literal["email", "push", "audience", "topics", "topic", "campaign"]
    to: str
    kind: str
    subject: str
    text: str
    status: Literal["pending", "sending", "sent", "dead", "skipped", "unconfirmed", "cancelled"]
    has_link: bool = Field(description="the message carries a secret link, withheld here")
    attempts: int
    error: str | None
    created_at: dt.datetime


class OutboxPage(Page[OutboxMessage]):
    pass


class Announcement(Reply):
    id: str
    title: str
    body: str
    created_at: dt.datetime
    expires_at: dt.datetime | None


class SentAnnouncement(Announcement):
    audience: str = Field(description="`all`, or `plan:<plan id>`")


class Announcements(Reply):
    items: list[Announcement]
