"""Party invites as links: `/party/<code>` is the deep link the apps open (a page for
people without the app), `GET /api/v1/parties/<code>` what the apps show before joining."""

from __future__ import annotations

from handlers.base import endpoint
from handlers.party.models import Invite
from handlers.routing import ApiHandler, PageHandler
from server.core import errors
from server.party.service import PartyService

TAGS = ("parties",)
CODE = r"(?P<code>[A-Za-z0-9_-]{8,64})"


class InviteHandler(ApiHandler):
    def initialize(self, parties: PartyService) -> None:
        self.parties = parties

    @endpoint("A watch-party invite: the title, the host and how many are in (join over Socket.IO /party)",
              response=Invite, auth=True, tags=TAGS, errors=(404,))
    async def get(self, code: str) -> None:
        self.reply(await self.parties.invite(code))


class InvitePage(PageHandler):
    def initialize(self, parties: PartyService) -> None:
        self.parties = parties

    @endpoint("The deep link of a watch-party invite: the party's title, and a link that opens the app",
              tags=("pages",), errors=(404,), content_type="text/html")
    async def get(self, code: str) -> None:
        try:
            invite = await self.parties.invite(code)
        except errors.NotFound:
            self.set_status(404)
            self.render("party.html", invite=None, code=code)
            return
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")  # the code is the invitation: keep it off other sites
        self.render("party.html", invite=invite, code=code)


def routes(parties: PartyService) -> list:
    return [(rf"/parties/{CODE}", InviteHandler, {"parties": parties})]


def page_routes(parties: PartyService) -> list:
    return [(rf"/party/{CODE}", InvitePage, {"parties": parties})]
