"""The Socket.IO gateway: one python-socketio AsyncServer on Tornado at /socket.io/.

Every namespace derives from `AuthedNamespace`, so a socket is authenticated once at
connect (the access token in the connect payload, or the staff pages' session cookie)
through the same session check as REST, and every event then goes through
`realtime.events.event`. With Redis, emits cross processes through python-socketio's
Redis manager; without it the in-process manager serves one process.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import time
from http.cookies import CookieError, SimpleCookie
from typing import Any

import socketio
import tornado.web

from realtime.connections import ConnectionRegistry
from realtime.events import failure
from server.core import errors
from server.core.permissions import Principal
from server.identity.sessions import REVOCATIONS_CHANNEL, SESSION_COOKIE, SessionService
from server.platform import Platform

log = logging.getLogger("nameless.realtime")

MAX_PAYLOAD_BYTES = 64 * 1024
PING_INTERVAL = 25  # mobile radios: long enough to let them sleep, short enough for NAT timeouts
PING_TIMEOUT = 20
MAX_SOCKETS_PER_USER = 10
EVENT_RATE = 20.0  # events per second per socket, sustained
EVENT_BURST = 40


class Gateway:
    """Owns the Socket.IO server, the local connection registry and live-emit helpers."""

    def __init__(self, platform: Platform, sessions: SessionService) -> None:
        self.platform = platform
        self.metrics = platform.metrics
        self.sessions = sessions
        # Unique per server instance, even when tests run two in one OS process.
        self.process_id = f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(3)}"
        settings = platform.settings
        manager: socketio.AsyncManager | None = None
        if settings.redis_url is not None:
            manager = socketio.AsyncRedisManager(
                settings.redis_url.get_secret_value(), channel=f"{settings.mongo_db}:socketio"
            )
        self.sio = socketio.AsyncServer(
            async_mode="tornado",
            client_manager=manager,
            cors_allowed_origins=list(settings.cors_origins) or None,
            max_http_buffer_size=MAX_PAYLOAD_BYTES,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            transports=["websocket", "polling"],
            logger=False,
            engineio_logger=False,
        )
        self.connections = ConnectionRegistry(
            max_per_user=MAX_SOCKETS_PER_USER, event_rate=EVENT_RATE, event_burst=EVENT_BURST
        )
        self._emit_times: collections.deque[float] = collections.deque(maxlen=2000)
        self._events: collections.deque[float] = collections.deque(maxlen=100_000)
        self._unsubscribe: Any = None

    def handler(self) -> type[tornado.web.RequestHandler]:
        base = socketio.get_tornado_handler(self.sio)

        class Handler(base):  # type: ignore[misc, valid-type]
            def get_compression_options(self) -> None:
                # Socket.IO frames are small JSON; permessage-deflate would keep a zlib pair
                # per browser socket (~190 KB each instead of ~42 KB; bench/README.md).
                return None

        return Handler

    def register(self, *namespaces: socketio.AsyncNamespace) -> None:
        for ns in namespaces:
            self.sio.register_namespace(ns)

    async def start(self) -> None:
        self._unsubscribe = await self.platform.pubsub.subscribe(REVOCATIONS_CHANNEL, self._on_revoked)

    async def stop(self) -> None:
        """Tell every local socket goodbye (Tornado's close_all_connections skips websockets)."""
        if self._unsubscribe is not None:
            await self._unsubscribe()
        # python-socketio's disconnect is O(rooms) per socket: bound the goodbye so a mass
        # disconnect cannot outlive the stop deadline (bench/README.md, Socket.IO findings).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sio.eio.disconnect(), self.platform.settings.shutdown_grace_seconds or 1)
        await self.sio.shutdown()

    async def _on_revoked(self, message: dict[str, Any]) -> None:
        await self.connections.on_revoked(message, self._disconnect_revoked)

    async def _disconnect_revoked(self, namespace: str, sid: str, body: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.sio.emit("session.revoked", body, to=sid, namespace=namespace, ignore_queue=True)
        await self.sio.disconnect(sid, namespace=namespace, ignore_queue=True)

    # --- authentication ----------------------------------------------------------------

    async def authenticate(self, environ: dict[str, Any], auth: Any) -> Principal:
        ip = _client_ip(environ, self.platform.settings.trust_proxy)
        token = auth.get("token") if isinstance(auth, dict) else None
        if isinstance(token, str) and token:
            return await self.sessions.authenticate(token, ip)
        session_id = self._cookie_session(environ)
        if session_id:
            return await self.sessions.authenticate_session(session_id, ip)
        raise errors.Unauthorized("Send the access token as auth.token.", code="token_missing")

    def _cookie_session(self, environ: dict[str, Any]) -> str | None:
        raw = environ.get("HTTP_COOKIE")
        if not raw:
            return None
        try:
            morsel = SimpleCookie(raw).get(SESSION_COOKIE)
        except CookieError:
            return None
        if morsel is None:
            return None
        value = tornado.web.decode_signed_value(
            self.platform.secret_key.decode(), SESSION_COOKIE, morsel.value, max_age_days=1
        )
        return value.decode() if value else None

    # --- emitting ------------------------------------------------------------------------

    async def emit(self, event: str, data: Any, *, room: str, namespace: str = "/") -> None:
        start = time.perf_counter()
        await self.sio.emit(event, data, room=room, namespace=namespace)
        elapsed = time.perf_counter() - start
        self._emit_times.append(elapsed)
        self.metrics.socket_emit_latency.labels(namespace).observe(elapsed)
        self.metrics.socket_events_out.labels(namespace, event).inc()

    async def emit_to_user(self, user_id: str, event: str, data: Any) -> None:
        await self.emit(event, data, room=user_room(user_id), namespace="/")

    def note_event(self) -> None:
        self._events.append(time.monotonic())

    def local_snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        while self._events and self._events[0] < now - 1.0:
            self._events.popleft()
        times = sorted(self._emit_times)
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000 if times else 0.0
        manager = self.sio.manager
        rooms = sum(  # named rooms only: every socket also sits in a room of its own sid
            1 for ns, named in manager.rooms.items() for name in named
            if name is not None and not manager.is_connected(name, ns)
        )
        return {
            "process": self.process_id,
            "connections": self.connections.by_namespace(),
            "rooms": rooms,
            "events_per_s": len(self._events),
            "emit_p99_ms": round(p99, 3),
            "at": time.time(),
        }


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


def _client_ip(environ: dict[str, Any], trust_proxy: bool) -> str:
    if trust_proxy and environ.get("HTTP_X_FORWARDED_FOR"):
        return str(environ["HTTP_X_FORWARDED_FOR"]).split(",")[0].strip()
    return str(environ.get("REMOTE_ADDR") or "-")


class AuthedNamespace(socketio.AsyncNamespace):
    """Connect-time authentication, the per-user cap and connection bookkeeping."""

    permission: str | None = None

    def __init__(self, namespace: str, gateway: Gateway) -> None:
        super().__init__(namespace)
        self.gateway = gateway

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        gw = self.gateway
        try:
            principal = await gw.authenticate(environ, auth)
            if self.permission is not None and not principal.can(self.permission):
                raise errors.Forbidden("Your role cannot open this channel.", code="forbidden")
            if gw.connections.user_count(principal.user_id) >= gw.connections.max_per_user:
                raise errors.Conflict("Too many open connections for this account.", code="too_many_connections")
        except errors.ApiError as err:
            gw.metrics.socket_refused.labels(self.namespace, err.code).inc()
            raise socketio.exceptions.ConnectionRefusedError(
                err.message, {"code": err.code, "message": err.message}
            ) from None
        gw.connections.add(self.namespace, sid, principal)
        gw.metrics.socket_connections.labels(self.namespace).inc()
        await self.joined(sid, principal)

    async def joined(self, sid: str, principal: Principal) -> None:
        """Namespaces join their rooms here."""

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        if self.gateway.connections.principal(self.namespace, sid) is not None:
            self.gateway.connections.remove(self.namespace, sid)
            self.gateway.metrics.socket_connections.labels(self.namespace).dec()

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Route `party.join` to `on_party_join`; unknown events get an error ack."""
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        self.gateway.note_event()
        handler = getattr(self, "on_" + event.replace(".", "_"), None)
        if handler is None or not getattr(handler, "is_event", False):
            self.gateway.metrics.socket_events_in.labels(self.namespace, "unknown").inc()
            return failure(errors.NotFound(f"No event {event[:60]!r} here.", code="unknown_event"))
        sid, payload = args[0], (args[1] if len(args) > 1 else None)
        return await handler(sid, payload)
