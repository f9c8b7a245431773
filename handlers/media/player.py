"""The web player page: plays a signed manifest of this server with hls.js."""

from __future__ import annotations

import urllib.parse

from handlers.base import PAGE_CSP, VENDOR, StaticHandler, endpoint
from handlers.routing import PageHandler


class PlayerPage(PageHandler):
    """A web player for a signed manifest of this server; the token in the URL is the
    authorization, so the page itself needs no sign-in."""

    csp = PAGE_CSP.replace("img-src 'self' data:;", "img-src 'self' data:; media-src 'self' blob:;")

    @endpoint("Web player for a signed manifest (?src=/media/...)", tags=("pages",))
    def get(self) -> None:
        src = self.get_query_argument("src", "")
        parts = urllib.parse.urlsplit(src)
        if parts.scheme or parts.netloc or not parts.path.startswith("/media/") or ".." in parts.path:
            src = ""
        self.render("player.html", src=src)


def routes() -> list:
    return [(r"/player", PlayerPage)]


def vendor_routes() -> list:
    return [(r"/(hls\.min\.js)", StaticHandler, {"path": str(VENDOR / "hls.js" / "dist")})]
