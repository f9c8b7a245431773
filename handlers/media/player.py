"""The web player page: plays a signed manifest of this server with hls.js."""

from __future__ import annotations

import urllib.parse

from pydantic import BaseModel, Field

from handlers.base import PAGE_CSP, VENDOR, StaticHandler, endpoint
from handlers.routing import PageHandler


class PlayerQuery(BaseModel):
    src: str | None = Field(default=None, description="the manifest: a /media/... path, or the manifest_url as "
                                                      "the API returned it (this origin only)")


class PlayerPage(PageHandler):
    """A web player for a signed manifest of this server; the token in the URL is the
    authorization, so the page itself needs no sign-in."""

    csp = PAGE_CSP.replace("img-src 'self' data:;", "img-src 'self' data:; media-src 'self' blob:;")

    @endpoint("Web player for a signed manifest of this server (?src=/media/... or the manifest_url as "
              "given, same origin only)", query=PlayerQuery, tags=("pages",), content_type="text/html")
    def get(self) -> None:
        self.render("player.html", src=self.same_origin_media(self.get_query_argument("src", "")))

    def same_origin_media(self, src: str) -> str:
        """The manifest's path when `src` is one of our media paths, written as a path or
        as an absolute URL of this very origin (what the API returns); else nothing."""
        parts = urllib.parse.urlsplit(src)
        if parts.scheme or parts.netloc:
            public = urllib.parse.urlsplit(self.platform.settings.public_url)
            ours = {f"{self.request.protocol}://{self.request.host}".lower(),
                    f"{public.scheme}://{public.netloc}".lower()}
            if f"{parts.scheme}://{parts.netloc}".lower() not in ours:
                return ""
        if not parts.path.startswith("/media/") or ".." in parts.path or parts.path.startswith("//"):
            return ""
        return urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))


def routes() -> list:
    return [(r"/player", PlayerPage)]


def vendor_routes() -> list:
    return [(r"/(hls\.min\.js)", StaticHandler, {"path": str(VENDOR / "hls.js" / "dist")})]
