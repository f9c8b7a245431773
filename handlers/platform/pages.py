"""The pages a newcomer opens first: a landing page at `/` pointing to the docs, the
sign-in and the README; interactive documentation of `/api/v1/openapi.json` at `/docs`
(Swagger UI from npm, served under `/vendor` like the other browser libraries); and the
site icon."""

from __future__ import annotations

from pathlib import Path

from handlers.base import VENDOR, StaticHandler, endpoint
from handlers.routing import PageHandler

WEB_STATIC = Path(__file__).resolve().parents[2] / "web" / "static"


class LandingPage(PageHandler):
    @endpoint("Landing page: where the API docs, the staff sign-in and the README are", tags=("pages",),
              content_type="text/html")
    def get(self) -> None:
        self.render("landing.html")


class DocsPage(PageHandler):
    @endpoint("Interactive documentation of the OpenAPI document (Swagger UI)", tags=("pages",),
              content_type="text/html")
    def get(self) -> None:
        self.render("docs.html")


class FaviconPage(PageHandler):
    """The icon the pages name; `/favicon.ico`, for clients that ask for it anyway, is
    web/static/favicon.ico, which Tornado's static route serves."""

    icon = (WEB_STATIC / "favicon.svg").read_bytes()

    @endpoint("The site icon (SVG)", tags=("pages",), content_type="image/svg+xml")
    def get(self) -> None:
        self.set_header("Content-Type", "image/svg+xml")
        self.set_header("Cache-Control", "public, max-age=86400")
        self.write(self.icon)


def routes() -> list:
    return [(r"/", LandingPage), (r"/docs", DocsPage), (r"/favicon\.svg", FaviconPage)]


def vendor_routes() -> list:
    return [(r"/swagger-ui/(swagger-ui\.css|swagger-ui-bundle\.js)", StaticHandler,
             {"path": str(VENDOR / "swagger-ui-dist")})]
