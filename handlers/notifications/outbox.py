"""What the server queued for delivery to whom, for staff (links carrying secrets withheld)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from handlers.base import endpoint
from handlers.notifications.models import OutboxPage
from handlers.routing import ApiHandler
from server.core.fields import PageQuery
from server.core.ids import ID_PATTERN
from server.notifications.outbox import Outbox

TAGS = ("admin",)


class OutboxQuery(PageQuery):
    to: Annotated[str, StringConstraints(max_length=320)] | None = None
    status: Literal["pending", "sending", "sent", "dead", "skipped", "unconfirmed", "cancelled"] | None = None


class OutboxHandler(ApiHandler):
    def initialize(self, outbox: Outbox) -> None:
        self.outbox = outbox

    @endpoint("Emails queued for delivery (links carrying secrets are withheld)", query=OutboxQuery,
              response=OutboxPage, permission="outbox.read", tags=TAGS)
    async def get(self) -> None:
        query = self.parse_query(OutboxQuery)
        self.reply(await self.outbox.page(query.to.lower() if query.to else None, query.limit, query.cursor,
                                          status=query.status))


class RetryHandler(ApiHandler):
    def initialize(self, outbox: Outbox) -> None:
        self.outbox = outbox

    @endpoint("Send a dead or unconfirmed delivery again", status=204, permission="outbox.retry", tags=TAGS,
              errors=(404, 409))
    async def post(self, delivery_id: str) -> None:
        await self.outbox.retry(delivery_id)
        self.no_content()


def routes(outbox: Outbox) -> list:
    return [(r"/admin/outbox", OutboxHandler, {"outbox": outbox}),
            (rf"/admin/outbox/(?P<delivery_id>{ID_PATTERN})/retry", RetryHandler, {"outbox": outbox})]
