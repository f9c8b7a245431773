"""The application factory: the route table, built around one platform and its services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web

from handlers import (
    admin_content,
    admin_media,
    admin_users,
    auth,
    health,
    history,
    me,
    notifications,
    openapi,
    pages,
    plans,
    playback,
    recommendations,
    reviews,
    titles,
)
from handlers.base import NotFoundHandler
from server.platform import Platform
from server.wiring import Services

API_PREFIX = "/api/v1"
WEB = Path(__file__).resolve().parent.parent / "web"
VERSION = "0.1.0"


class Compress(tornado.web.GZipContentEncoding):
    """gzip as Tornado does, plus HLS playlists (text, and ~12x smaller compressed), never
    for a partial (206) response."""

    CONTENT_TYPES = tornado.web.GZipContentEncoding.CONTENT_TYPES | {"application/vnd.apple.mpegurl"}

    def transform_first_chunk(
        self, status_code: int, headers: Any, chunk: bytes, finishing: bool
    ) -> tuple[int, Any, bytes]:
        if status_code == 206:
            self._gzipping = False
            return status_code, headers, chunk
        return super().transform_first_chunk(status_code, headers, chunk, finishing)


def make_app(platform: Platform, services: Services, *,
             extra_settings: dict[str, Any] | None = None) -> tornado.web.Application:
    """Every route of the product; handlers get their collaborators through the table."""
    s = services
    api_routes: list[Any] = [
        *auth.routes(s.accounts, s.sessions, s.social),
        *me.routes(s.accounts, s.sessions, s.social, s.totp, s.phone, s.profiles),
        *admin_users.routes(s.staff, s.audit_repo, s.outbox_repo),
        *notifications.routes(s.notifications),
        *titles.routes(s.viewers, s.catalog, s.home),
        *history.routes(s.viewers, s.history),
        *reviews.routes(s.viewers, s.reviews),
        *recommendations.routes(s.viewers, s.recommendations),
        *admin_content.routes(s.content_admin),
        *plans.routes(s.entitlements),
        *admin_media.routes(s.uploads, s.job_repo),
        *playback.routes(s.playback),
    ]
    rules: list[Any] = [*health.routes, *pages.routes(s.accounts, s.sessions),
                        *playback.media_routes(s.playback, s.media_store)]
    rules += [(API_PREFIX + pattern, *rest) for pattern, *rest in api_routes]
    documented = [(pattern, handler) for pattern, handler, *_ in rules]
    rules.insert(0, (r"/socket\.io/", s.gateway.handler()))  # matched first: every socket upgrade and poll
    rules.append((API_PREFIX + r"/openapi\.json", openapi.OpenApiHandler, {"rules": documented, "version": VERSION}))
    settings: dict[str, Any] = {
        "platform": platform,
        "authenticator": services.sessions,
        "in_flight": set(),
        "default_handler_class": NotFoundHandler,
        "xsrf_cookies": True,
        "xsrf_cookie_kwargs": {"httponly": False, "samesite": "Strict", "secure": False},
        "cookie_secret": platform.secret_key.decode(),
        "transforms": [Compress],
        "log_function": lambda handler: None,  # BaseHandler.on_finish logs every request
        "web_templates": str(WEB / "templates"),
        "static_path": str(WEB / "static"),
        "static_url_prefix": "/static/",
        "static_handler_class": pages.StaticHandler,
    }
    settings.update(extra_settings or {})
    return tornado.web.Application(rules, **settings)
