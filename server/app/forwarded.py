"""The HTTP server's view of the client: each request's address and scheme are resolved
once, by `server.core.forwarding`, before the app routes it, so `request.remote_ip` and
`request.protocol` are the same for REST, pages, media and Socket.IO.

Tornado's own `xheaders` would let X-Real-IP override X-Forwarded-For and trust only its
last entry, whatever number of proxies stands in front; this replaces it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from tornado import httputil

from config import Settings
from server.core.forwarding import forwarded_client


class ResolveClient(httputil.HTTPServerConnectionDelegate):
    """Wraps the application for `HTTPServer`: every request passes through `_Resolved`."""

    def __init__(self, app: httputil.HTTPServerConnectionDelegate, settings: Settings) -> None:
        self.app = app
        self.hops = settings.proxy_hops
        self.ip_header = settings.client_ip_header

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        if self.hops <= 0:  # no trusted proxy: the peer is the client, as the connection already says
            return self.app.start_request(server_conn, request_conn)
        return _Resolved(self, self.app.start_request(server_conn, request_conn), request_conn)

    def on_close(self, server_conn: object) -> None:
        self.app.on_close(server_conn)


class _Resolved(httputil.HTTPMessageDelegate):
    """Sets the connection's address and scheme for one request, and restores the peer's
    afterwards (a keep-alive connection carries requests with different headers)."""

    def __init__(self, owner: ResolveClient, delegate: httputil.HTTPMessageDelegate,
                 request_conn: httputil.HTTPConnection) -> None:
        self.owner = owner
        self.delegate = delegate
        self.context: Any = request_conn.context  # type: ignore[attr-defined]
        self.peer = (self.context.remote_ip, self.context.protocol)

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        client = forwarded_client(*self.peer, headers, hops=self.owner.hops, ip_header=self.owner.ip_header)
        self.context.remote_ip, self.context.protocol = client.ip, client.scheme
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()
        self._restore()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()
        self._restore()

    def _restore(self) -> None:
        self.context.remote_ip, self.context.protocol = self.peer
