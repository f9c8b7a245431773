"""What the viewer endpoints share: the `profile_id` query parameter and its resolution to
a `Viewer` (a profile of the signed-in account; another account's profile is a 404)."""

from __future__ import annotations

from pydantic import Field

from handlers.routing import ApiHandler
from server.catalog.viewers import Viewer, ViewerResolver
from server.core.fields import Id, PageQuery


class ViewerQuery(PageQuery):
    profile_id: Id | None = Field(default=None, description="one of my profiles; default: the first")


class ViewerHandler(ApiHandler):
    """Base of the handlers that act for one of the caller's profiles."""

    def initialize(self, viewers: ViewerResolver, **services: object) -> None:
        self.viewers = viewers
        for name, service in services.items():
            setattr(self, name, service)

    async def viewer(self, profile_id: str | None) -> Viewer:
        return await self.viewers.resolve(self.user.user_id, profile_id)
