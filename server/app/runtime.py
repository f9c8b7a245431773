"""Start and stop one serving process: embedded database if needed, platform, HTTP server.

Shared by `run.py` and the tests, so the tests exercise the same start and shutdown path.
"""

from __future__ import annotations

import asyncio
import logging
import time

import tornado.httpserver
import tornado.netutil
import tornado.web

from config import Settings
from server.app import wiring
from server.app.domains import wire_product
from server.app.factory import make_app
from server.app.forwarded import ResolveClient
from server.app.wiring import Product, Services
from server.platform import Platform, build_platform
from storage import mongo
from storage.embedded_mongo import EmbeddedMongo, private_dir

log = logging.getLogger("nameless")

# Connections the kernel completes while the process is busy: after a restart every app
# reconnects at once, and a SYN that finds the queue full waits 1, 3, 7, 15, 31 s to be
# retried. The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096


class Runtime:
    def __init__(self, settings: Settings, *, mongo_url: str | None = None) -> None:
        self.settings = settings
        self._mongo_url = mongo_url
        self.embedded: EmbeddedMongo | None = None
        self.platform: Platform | None = None
        self.product: Product | None = None
        self.app: tornado.web.Application | None = None
        self.server: tornado.httpserver.HTTPServer | None = None
        self.port: int | None = None
        self._in_flight: set[object] = set()

    @property
    def services(self) -> Services | None:
        return self.product.services if self.product is not None else None

    async def start(self, *, serve_http: bool = True) -> None:
        """Open the database (starting the embedded one if needed) and build the services;
        then, unless this is an admin command, listen for HTTP."""
        url = self._mongo_url
        if url is None and self.settings.mongo_url is not None:
            url = self.settings.mongo_url.get_secret_value()
        if url is None:
            private_dir(self.settings.data_dir)  # keys, media and the database: the owner's only
            self.embedded = EmbeddedMongo(self.settings.data_dir / "mongo")
            url = await asyncio.to_thread(self.embedded.start)
        self.platform = await build_platform(self.settings, mongo_url=url)
        self.product = wire_product(self.platform)
        await mongo.ensure_indexes(self.platform.db, self.product.index_specs)
        if not serve_http:
            return
        await self.product.start()
        app = self.app = make_app(self.platform, self.product)
        self._in_flight = app.settings["in_flight"]
        self.server = tornado.httpserver.HTTPServer(
            ResolveClient(app, self.settings),  # the client's address and scheme, behind trusted proxies
            max_body_size=self.settings.max_request_bytes,
            idle_connection_timeout=75,
            body_timeout=120,
        )
        sockets = tornado.netutil.bind_sockets(self.settings.port, self.settings.host, backlog=LISTEN_BACKLOG)
        self.port = sockets[0].getsockname()[1]
        self.server.add_sockets(sockets)
        log.info("serving", extra={"host": self.settings.host, "port": self.port,
                                   "embedded_mongo": self.embedded is not None,
                                   "redis": self.settings.redis_url is not None})

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish within the grace period, close."""
        if self.server is not None:
            self.server.stop()
            log.info("stopping", extra={"in_flight": len(self._in_flight)})
            deadline = time.monotonic() + self.settings.shutdown_grace_seconds
            while self._in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self._in_flight:
                log.warning("shutdown deadline passed", extra={"abandoned": len(self._in_flight)})
            if self.product is not None:
                await self.product.stop()
            log.info("background work stopped")
            # a request stuck on a dependency that never answers must not keep the process
            await wiring.bounded(self.server.close_all_connections, self.server.close_all_connections)
            self.server = None
        if self.platform is not None:
            await wiring.bounded(self.platform.close, self.platform.close)
            self.platform = None
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None
        log.info("stopped")
