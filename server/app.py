"""The application factory: the route table, built around one platform and its services."""

from __future__ import annotations

from typing import Any

import tornado.web

from handlers import health, openapi
from handlers.base import NotFoundHandler
from server.platform import Platform

API_PREFIX = "/api/v1"
VERSION = "0.1.0"


def make_app(platform: Platform, *, extra_settings: dict[str, Any] | None = None) -> tornado.web.Application:
    """Every route of the product; handlers get their collaborators through the table."""
    api_routes: list[Any] = []
    rules: list[Any] = [*health.routes]
    rules += [(API_PREFIX + pattern, *rest) for pattern, *rest in api_routes]
    documented = [(pattern, handler) for pattern, handler, *_ in rules]
    rules.append((API_PREFIX + r"/openapi\.json", openapi.OpenApiHandler, {"rules": documented, "version": VERSION}))
    settings: dict[str, Any] = {
        "platform": platform,
        "in_flight": set(),
        "default_handler_class": NotFoundHandler,
        "xsrf_cookies": True,
        "xsrf_cookie_kwargs": {"httponly": False, "samesite": "Strict", "secure": False},
        "cookie_secret": platform.secret_key.decode(),
        "compress_response": True,
        "log_function": lambda handler: None,  # BaseHandler.on_finish logs every request
    }
    settings.update(extra_settings or {})
    return tornado.web.Application(rules, **settings)
