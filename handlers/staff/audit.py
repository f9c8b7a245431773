"""The audit log of staff actions, for those who may read it."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from handlers.base import endpoint
from handlers.routing import ApiHandler
from handlers.staff.models import AuditPage
from server.core.fields import PageQuery
from server.staff.audit import AuditLog

TAGS = ("admin",)


class AuditQuery(PageQuery):
    actor_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    target_id: Annotated[str, StringConstraints(max_length=64)] | None = None


class AuditHandler(ApiHandler):
    def initialize(self, audit: AuditLog) -> None:
        self.audit = audit

    @endpoint("The audit log of staff actions, newest first", query=AuditQuery, response=AuditPage,
              permission="audit.read", tags=TAGS)
    async def get(self) -> None:
        query = self.parse_query(AuditQuery)
        self.reply(await self.audit.page(query.actor_id, query.target_id, query.limit, query.cursor))


def routes(audit: AuditLog) -> list:
    return [(r"/admin/audit", AuditHandler, {"audit": audit})]
