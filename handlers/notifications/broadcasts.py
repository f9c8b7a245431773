"""Staff broadcasts: new releases and promotions to everyone who opted in, as an FCM topic
message and a Mailchimp campaign, queued in the outbox."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from handlers.base import endpoint
from handlers.notifications.models import BroadcastQueued
from handlers.routing import ApiHandler
from server.core.fields import Body
from server.notifications.inbox import NotificationService

TAGS = ("admin",)


class BroadcastBody(Body):
    kind: Literal["release", "promotions"]
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
    channels: list[Literal["push", "email"]] = Field(default_factory=lambda: ["push", "email"], min_length=1,
                                                     max_length=2)


class BroadcastsHandler(ApiHandler):
    def initialize(self, notifications: NotificationService) -> None:
        self.notifications = notifications

    @endpoint("Broadcast to everyone who opted in to the kind (push topic, email campaign)", body=BroadcastBody,
              response=BroadcastQueued, status=202, permission="notifications.broadcast", tags=TAGS)
    async def post(self) -> None:
        body = self.parse(BroadcastBody)
        broadcast_id = await self.notifications.broadcast(self.user, body.kind, body.title, body.body,
                                                          sorted(set(body.channels)), self.client_ip)
        self.reply({"id": broadcast_id}, status=202)


def routes(notifications: NotificationService) -> list:
    return [(r"/admin/broadcasts", BroadcastsHandler, {"notifications": notifications})]
