"""The application factory: the route table, built around one platform and its services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web
from tornado import httputil
from tornado.concurrent import Future

from handlers import routing
from handlers.base import StaticHandler, declares_body, header
from handlers.platform import openapi
from handlers.routing import NotFoundHandler
from server.app.wiring import Product
from server.media.transcode import PLAYLIST_TYPE
from server.platform import Platform

WEB = Path(__file__).resolve().parents[2] / "web"
VERSION = "0.1.0"


class Compress(tornado.web.GZipContentEncoding):
    """gzip as Tornado does, plus HLS playlists (text, and ~12x smaller compressed) whatever
    their size, as Apple's HLS authoring specification asks of every playlist, the short
    master too; never for a partial (206) response."""

    CONTENT_TYPES = tornado.web.GZipContentEncoding.CONTENT_TYPES | {PLAYLIST_TYPE}

    def __init__(self, request: httputil.HTTPServerRequest) -> None:
        accepted = header(request.headers, "Accept-Encoding")
        self._gzipping = accepted is not None and "gzip" in accepted

    def transform_first_chunk(
        self, status_code: int, headers: Any, chunk: bytes, finishing: bool
    ) -> tuple[int, Any, bytes]:
        if status_code == 206:
            self._gzipping = False
            return status_code, headers, chunk
        if not self._gzipping:  # all Tornado's transform does then, without its call
            headers["Vary"] = headers["Vary"] + ", Accept-Encoding" if "Vary" in headers else "Accept-Encoding"
            return status_code, headers, chunk
        if str(headers.get("Content-Type", "")).split(";")[0] == PLAYLIST_TYPE:
            self.MIN_LENGTH = 0
        return super().transform_first_chunk(status_code, headers, chunk, finishing)


class EdgeApplication(tornado.web.Application):
    """Tornado's application, with a request that has no body served as one: a handler
    that streams bodies (every API handler, for its size limits) otherwise waits for the
    connection to confirm the empty body, two more turns of the event loop per request."""

    _received: Future[None] | None = None  # resolved once: awaiting a done future any number of times is free

    def get_handler_delegate(self, request: httputil.HTTPServerRequest, target_class: type[tornado.web.RequestHandler],
                             target_kwargs: dict[str, Any] | None = None, path_args: list[bytes] | None = None,
                             path_kwargs: dict[str, bytes] | None = None) -> Any:
        delegate = super().get_handler_delegate(request, target_class, target_kwargs, path_args, path_kwargs)
        if delegate.stream_request_body and not declares_body(request.headers):
            delegate.stream_request_body = False  # the handler runs once the (empty) request is read
            received = self._received
            if received is None:
                received = self._received = Future()
                received.set_result(None)
            request._body_future = received  # what a streaming handler awaits before its method
        return delegate


def make_app(platform: Platform, product: Product, *,
             extra_settings: dict[str, Any] | None = None) -> tornado.web.Application:
    """Every route of the product, group by group; handlers get their collaborators
    through the table."""
    services = product.services
    rules: list[Any] = []
    for group in routing.GROUPS:
        rules += group.rules(product.routes(group))
    documented: list[tuple[str, type]] = []  # filled below, so the document lists its own route too
    rules += routing.API.rules([(r"/openapi\.json", openapi.OpenApiHandler,
                                 {"rules": documented, "version": VERSION})])
    documented += [(pattern, handler) for pattern, handler, *_ in rules]
    rules.insert(0, (r"/socket\.io/", services.gateway.handler()))  # matched first: every socket upgrade and poll
    settings: dict[str, Any] = {
        "platform": platform,
        "authenticator": services.sessions,
        "in_flight": set(),
        "default_handler_class": NotFoundHandler,
        "xsrf_cookies": True,
        "xsrf_cookie_kwargs": {"httponly": False, "samesite": "Strict"},  # Secure: BaseHandler.set_cookie
        "cookie_secret": platform.secret_key.decode(),
        "transforms": [Compress],
        "log_function": lambda handler: None,  # BaseHandler.on_finish logs every request
        "web_templates": str(WEB / "templates"),
        "static_path": str(WEB / "static"),
        "static_url_prefix": "/static/",
        "static_handler_class": StaticHandler,
    }
    settings.update(extra_settings or {})
    return EdgeApplication(rules, **settings)
