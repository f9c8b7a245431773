"""What the server queued for delivery to whom, for staff (links carrying secrets withheld)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from handlers.base import endpoint
from handlers.notifications.models import OutboxPage
from handlers.routing import ApiHandler
from server.core.fields import PageQuery
from server.notifications.outbox import Outbox

TAGS = ("admin",)


class OutboxQuery(PageQuery):
    to: Annotated[str, StringConstraints(max_length=320)] | None = None


class OutboxHandler(ApiHandler):
    def initialize(self, outbox: Outbox) -> None:
        self.outbox = outbox

    @endpoint("Emails queued for delivery (links carrying secrets are withheld)", query=OutboxQuery,
              response=OutboxPage, permission="outbox.read", tags=TAGS)
    async def get(self) -> None:
        query = self.parse_query(OutboxQuery)
        self.reply(await self.outbox.page(query.to.lower() if query.to else None, query.limit, query.cursor))


def routes(outbox: Outbox) -> list:
    return [(r"/admin/outbox", OutboxHandler, {"outbox": outbox})]
