"""Staff announcements: admins send them, viewers list the active ones meant for them."""

from __future__ import annotations

from handlers.base import endpoint
from handlers.notifications.models import Announcements, SentAnnouncement
from handlers.routing import ApiHandler
from server.notifications.announcements import AnnouncementBody, AnnouncementService


class AnnouncementsHandler(ApiHandler):
    def initialize(self, announcements: AnnouncementService) -> None:
        self.announcements = announcements


class SendHandler(AnnouncementsHandler):
    @endpoint("Announce to every connected viewer, or to one plan's (live, and on connect until it expires)",
              body=AnnouncementBody, response=SentAnnouncement, status=201, permission="announcements.send",
              tags=("admin",), errors=(422,))
    async def post(self) -> None:
        body = self.parse(AnnouncementBody)
        self.reply(await self.announcements.send(self.user, body, self.client_ip), status=201)


class ActiveHandler(AnnouncementsHandler):
    @endpoint("The active staff announcements meant for me", response=Announcements, auth=True,
              tags=("notifications",))
    async def get(self) -> None:
        self.reply(await self.announcements.list_for(self.user.user_id))


def routes(announcements: AnnouncementService) -> list:
    deps = {"announcements": announcements}
    return [(r"/admin/announcements", SendHandler, deps), (r"/announcements", ActiveHandler, deps)]
