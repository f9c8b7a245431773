"""Route groups: each part of the URL space declares its prefix and its base handler once,
and the base carries the group's policy (see `handlers.base`).

A rule whose handler does not derive from its group's base is refused when the app is
built, so no endpoint can slip into a group without that group's body limit, XSRF rule
and rate limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from handlers.base import ApiHandler, MediaFileHandler, PageHandler, ProbeHandler, StaticHandler, WebhookHandler

Rule = tuple[Any, ...]  # (pattern relative to the prefix, handler class[, initialize kwargs])


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
VENDOR = RouteGroup("vendor", "/vendor", StaticHandler)  # browser libraries from web/node_modules
GROUPS = (PROBES, PAGES, VENDOR, MEDIA, WEBHOOKS, API)
