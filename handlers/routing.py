"""Route groups: each part of the URL space declares its prefix and its base handler once,
and the base carries the group's policy: content security policy, body limit, XSRF and
whether the per-IP limit applies. An endpoint inherits its group's policy; the only
endpoint-level departures are the player page's `media-src` (it plays blob URLs), the
support console's `'wasm-unsafe-eval'` (libsodium is WebAssembly) and the upload chunk's
body limit (the configured chunk size).

A rule whose handler does not derive from its group's base is refused when the app is
built, so no endpoint can slip into a group without that group's body limit, XSRF rule
and rate limit.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from handlers.base import PAGE_CSP, BaseHandler, StaticHandler
from server.core import errors

Rule = tuple[Any, ...]  # (pattern relative to the prefix, handler class[, initialize kwargs])


class ApiHandler(BaseHandler):
    """`/api/v1`: JSON bodies up to the configured limit, the per-IP limit, XSRF only for
    requests carried by the staff session cookie."""


class PageHandler(BaseHandler):
    """Staff pages: the page CSP, form bodies parsed by Tornado, XSRF on every post (forms
    carry the token even before sign-in), the staff cookie as the session."""

    csp = PAGE_CSP
    xsrf_always = True
    _stream_request_body = False  # forms are small; Tornado parses them (and _xsrf) for us

    def get_template_path(self) -> str:
        return self.application.settings["web_templates"]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, errors.Unauthorized) and self.request.method == "GET":
            self.redirect("/login?next=" + urllib.parse.quote(self.request.uri or "/admin", safe=""))
            return
        super().write_error(status_code, **kwargs)

    def uses_cookie_auth(self) -> bool:
        return "Authorization" not in self.request.headers

    def form(self, name: str, limit: int = 1024) -> str:
        return self.get_body_argument(name, "", strip=True)[:limit]


class MediaFileHandler(BaseHandler):
    """`/media`: no per-IP limit, since a player fetches a segment every few seconds and the
    signed token in the path is the gate."""

    ip_rate_limited = False


class ProbeHandler(BaseHandler):
    """Health and readiness: never rate limited, so a load balancer never sees a 429."""

    ip_rate_limited = False


class InternalHandler(BaseHandler):
    """Internal endpoints (metrics): loopback scrapers or a bearer token, and the per-IP
    limit, so the token cannot be guessed at speed."""


class WebhookHandler(BaseHandler):
    """`/webhooks`: calls from payment and messaging providers. Never XSRF (the provider's
    signature over the raw body is the proof), the per-IP limit, JSON size limit."""

    def check_xsrf_cookie(self) -> None:
        return None


class NotFoundHandler(ApiHandler):
    """Every unknown route: a JSON 404 in the contract's shape."""

    def _declared(self) -> None:
        # In place of the endpoint check: nothing here is declared, and 404 says why.
        self.principal = None
        raise errors.NotFound("There is nothing at this address.", code="route_not_found")


@dataclass(frozen=True)
class RouteGroup:
    name: str
    prefix: str
    base: type

    def rules(self, routes: Iterable[Rule]) -> list[Rule]:
        """The group's routes under its prefix, each checked against the group's base."""
        out: list[Rule] = []
        for pattern, handler, *rest in routes:
            if not (isinstance(handler, type) and issubclass(handler, self.base)):
                raise TypeError(f"{handler!r} at {pattern} is not a {self.base.__name__} ({self.name} routes)")
            out.append((self.prefix + pattern, handler, *rest))
        return out


API = RouteGroup("api", "/api/v1", ApiHandler)
PAGES = RouteGroup("page", "", PageHandler)
MEDIA = RouteGroup("media", "/media", MediaFileHandler)
WEBHOOKS = RouteGroup("webhook", "/webhooks", WebhookHandler)
PROBES = RouteGroup("probe", "", ProbeHandler)
INTERNAL = RouteGroup("internal", "", InternalHandler)
VENDOR = RouteGroup("vendor", "/vendor", StaticHandler)  # browser libraries from web/node_modules
GROUPS = (PROBES, INTERNAL, PAGES, VENDOR, MEDIA, WEBHOOKS, API)
