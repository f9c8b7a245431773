"""What the viewer endpoints share: the `profile_id` query parameter and its resolution to
a `Viewer` (a profile of the signed-in account; another account's profile is a 404)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from handlers.base import BaseHandler
from handlers.models import PageQuery
from server.viewers import Viewer, ViewerResolver

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,64}$")]
ID_PATTERN = r"[A-Za-z0-9]{1,64}"


class ViewerQuery(PageQuery):
    profile_id: Id | None = Field(default=None, description="one of my profiles; default: the first")


class ViewerHandler(BaseHandler):
    """Base of the handlers that act for one of the caller's profiles."""

    def initialize(self, viewers: ViewerResolver, **services: object) -> None:
        self.viewers = viewers
        for name, service in services.items():
            setattr(self, name, service)

    async def viewer(self, profile_id: str | None) -> Viewer:
        return await self.viewers.resolve(self.user.user_id, profile_id)
