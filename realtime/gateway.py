"""The Socket.IO gateway: one python-socketio AsyncServer on Tornado at /socket.io/.

Every namespace derives from `AuthedNamespace`, so a socket is authenticated once at
connect (the access token in the connect payload, or the staff pages' session cookie)
through the same session check as REST, and every event then goes through
`realtime.events.event`. A revoked session, a suspension or a role change later re-checks
or closes the affected sockets on every process (announced over pub/sub). Room emits are
encoded once and written straight to every member (realtime.rooms, realtime.transport);
with Redis they reach the processes holding members through a channel per room
(realtime.redis_rooms). docs/realtime.md tells the whole path.

Both transports, websocket and long-polling, are served. Neither uses the cookie XSRF
check (a poll is bound to its Engine.IO session id, which a foreign page never learns);
both admit only the configured origins and the server's own, and an Engine.IO session
that opens no namespace within CONNECT_TIMEOUT is closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import time
import urllib.parse
from http.cookies import CookieError, SimpleCookie
from typing import Any

import socketio
import tornado.web

from realtime.connections import ConnectionRegistry
from realtime.events import failure
from realtime.redis_rooms import RedisRooms
from realtime.rooms import LocalRooms
from realtime.transport import EngineServer, SocketHandler
from server.core import errors
from server.core.permissions import Principal
from server.identity.sessions import ACCESS_CHANNEL, REVOCATIONS_CHANNEL, SESSION_COOKIE, SessionService
from server.platform import Platform

log = logging.getLogger("nameless.realtime")

MAX_PAYLOAD_BYTES = 64 * 1024
PING_INTERVAL = 25  # mobile radios: long enough to let them sleep, short enough for NAT timeouts
PING_TIMEOUT = 20
MAX_SOCKETS_PER_USER = 10
EVENT_RATE = 20.0  # events per second per socket, sustained
EVENT_BURST = 40
CONNECT_TIMEOUT = 5.0  # seconds an Engine.IO session may stay open without opening a namespace


class _Server(socketio.AsyncServer):
    """python-socketio's server, closing Engine.IO sessions that never open a namespace:
    a client that upgrades and then sends nothing would otherwise be kept alive by pings."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._expiring: set[asyncio.Task[None]] = set()

    def _engineio_server_class(self) -> type[EngineServer]:
        return EngineServer

    def joined(self, eio_sid: str) -> bool:
        """Whether the Engine.IO session has opened (been authenticated for) a namespace."""
        return any(self.manager.sid_from_eio_sid(eio_sid, ns) for ns in self.namespace_handlers)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        await super()._handle_eio_connect(eio_sid, environ)
        handler = environ.get("tornado.handler")
        if handler is not None:
            handler.eio_sid = eio_sid  # the websocket that opened the session, if it was one
        asyncio.get_running_loop().call_later(CONNECT_TIMEOUT, self._expire_unjoined, eio_sid)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        """After the namespace's CONNECT packet, the socket's first sends (what it missed)
        run in the same handler task: nothing sent before that packet reaches the client,
        and a task per socket would cost every connect for the few that get anything."""
        await super()._handle_connect(eio_sid, namespace, data)
        namespace = namespace or "/"
        handler = self.namespace_handlers.get(namespace)
        if isinstance(handler, AuthedNamespace):
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
            if sid is not None and self.manager.is_connected(sid, namespace):
                await handler.connected(sid)

    def _expire_unjoined(self, eio_sid: str) -> None:
        if eio_sid not in self.eio.sockets or self.joined(eio_sid):
            return
        task = asyncio.ensure_future(self.eio.disconnect(eio_sid))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)


def _library_logger(name: str) -> logging.Logger:
    """python-socketio's logger, errors only, through the app's handler (JSON, redacted):
    left to itself, the library adds a plain stderr handler of its own."""
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
    return logger


def origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...]) -> bool:
    """The one origin rule of both transports: a configured origin, or the server's own."""
    if not origin:
        return False  # no Origin header: not a browser, nothing to grant CORS to
    origin = origin.rstrip("/")
    return origin in allowed or urllib.parse.urlsplit(origin).netloc.lower() == host.lower()


class Gateway:
    """Owns the Socket.IO server, the local connection registry and live-emit helpers."""

    def __init__(self, platform: Platform, sessions: SessionService) -> None:
        self.platform = platform
        self.metrics = platform.metrics
        self.sessions = sessions
        # Unique per server instance, even when tests run two in one OS process.
        self.process_id = f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(3)}"
        settings = platform.settings
        manager: socketio.AsyncManager = LocalRooms()
        if settings.redis_url is not None:
            manager = RedisRooms(settings.redis_url.get_secret_value(), channel=f"{settings.mongo_db}:socketio",
                                 pubsub=platform.pubsub)
        self.sio = _Server(
            async_mode="tornado",
            client_manager=manager,
            cors_allowed_origins=lambda origin, environ: origin_allowed(
                origin, environ.get("HTTP_HOST", ""), settings.cors_origins),
            max_http_buffer_size=MAX_PAYLOAD_BYTES,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            transports=["websocket", "polling"],
            logger=_library_logger("socketio.server"),
            engineio_logger=_library_logger("engineio.server"),
        )
        self.sio.eio.on_slow_consumer = self.metrics.socket_slow_consumers.inc
        self.connections = ConnectionRegistry(
            max_per_user=MAX_SOCKETS_PER_USER, event_rate=EVENT_RATE, event_burst=EVENT_BURST
        )
        self._emit_times: collections.deque[float] = collections.deque(maxlen=2000)
        self._events: collections.deque[float] = collections.deque(maxlen=100_000)
        self._unsubscribe: list[Any] = []

    def handler(self) -> type[tornado.web.RequestHandler]:
        allowed = self.platform.settings.cors_origins
        server = self.sio

        class SocketIOHandler(SocketHandler):
            engine = server.eio
            eio_sid: str | None = None

            async def open(self, *args: Any, **kwargs: Any) -> None:
                # Engine.IO answers its close packet but keeps reading for ping_interval +
                # ping_timeout: a client that ignores it would hold the socket for 45 s.
                asyncio.get_running_loop().call_later(CONNECT_TIMEOUT, self._close_unjoined)
                await super().open(*args, **kwargs)

            def _close_unjoined(self) -> None:
                eio_sid = self.eio_sid or self.get_query_argument("sid", None)
                if self.ws_connection is not None and not (eio_sid and server.joined(eio_sid)):
                    self.close()

            def check_xsrf_cookie(self) -> None:
                # Polling posts carry the Engine.IO session id, learnt only by the client
                # that opened the session (same origin or a configured one); the connection
                # itself is authenticated at connect, with the token or the staff cookie.
                return None

            def check_origin(self, origin: str) -> bool:
                return origin_allowed(origin, self.request.host or "", allowed)

        return SocketIOHandler

    def register(self, *namespaces: socketio.AsyncNamespace) -> None:
        for ns in namespaces:
            self.sio.register_namespace(ns)

    async def start(self) -> None:
        pubsub = self.platform.pubsub
        await self.platform.socket_slots.start(self.process_id)
        self._unsubscribe = [await pubsub.subscribe(REVOCATIONS_CHANNEL, self._on_revoked),
                             await pubsub.subscribe(ACCESS_CHANNEL, self._on_access_changed)]

    async def stop(self) -> None:
        """Tell every local socket goodbye (Tornado's close_all_connections skips websockets)."""
        for unsubscribe in self._unsubscribe:
            await unsubscribe()
        # Bounded all the same, so a mass disconnect (each runs the app's disconnect
        # handlers) cannot outlive the stop deadline.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sio.eio.disconnect(), self.platform.settings.shutdown_grace_seconds or 1)
        await self.sio.shutdown()
        await self.platform.socket_slots.stop()

    async def _on_revoked(self, message: dict[str, Any]) -> None:
        await self.connections.on_revoked(message, self._disconnect_revoked)

    async def _disconnect_revoked(self, namespace: str, sid: str, body: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.sio.emit("session.revoked", body, to=sid, namespace=namespace, ignore_queue=True)
        await self.sio.disconnect(sid, namespace=namespace, ignore_queue=True)

    async def _on_access_changed(self, message: dict[str, Any]) -> None:
        """Re-check each local socket of the user with the connect-time check: a suspended
        account or a revoked session is told so and closed, a socket whose namespace the
        user's roles no longer open is closed, the others carry the current roles."""
        user_id = message.get("user_id") if isinstance(message, dict) else None
        if not isinstance(user_id, str):
            return
        closed = 0
        for (namespace, sid), conn in self.connections.of_user(user_id):
            permission = getattr(self.sio.namespace_handlers.get(namespace), "permission", None)
            try:
                principal = await self.sessions.authenticate_session(conn.principal.session_id, conn.ip)
            except errors.ApiError as err:
                await self._disconnect_revoked(namespace, sid, {"reason": err.code})
                closed += 1
                continue
            if permission is not None and not principal.can(permission):
                await self.sio.disconnect(sid, namespace=namespace, ignore_queue=True)
                closed += 1
                continue
            self.connections.refresh(namespace, sid, principal)
        if closed:
            log.info("sockets closed after an access change", extra={"count": closed})

    # --- authentication ----------------------------------------------------------------

    async def authenticate(self, environ: dict[str, Any], auth: Any) -> Principal:
        ip = client_ip(environ)
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

    async def emit_to_socket(self, sid: str, event: str, data: Any, namespace: str = "/") -> None:
        """To one socket this process holds (never through the cross-process manager)."""
        await self.sio.emit(event, data, to=sid, namespace=namespace, ignore_queue=True)
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


def client_ip(environ: dict[str, Any]) -> str:
    """The address the HTTP server resolved for this request (server.app.forwarded), the
    same as REST sees; Engine.IO's own REMOTE_ADDR is a placeholder under Tornado."""
    handler = environ.get("tornado.handler")
    return str(getattr(getattr(handler, "request", None), "remote_ip", None) or "-")


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
            # This process's count answers most refusals; the shared slots count every process.
            if gw.connections.user_count(principal.user_id) >= gw.connections.max_per_user or not (
                await gw.platform.socket_slots.claim(principal.user_id, sid, gw.connections.max_per_user)
            ):
                raise errors.Conflict("Too many open connections for this account.", code="too_many_connections")
        except errors.ApiError as err:
            gw.metrics.socket_refused.labels(self.namespace, err.code).inc()
            raise socketio.exceptions.ConnectionRefusedError(
                err.message, {"code": err.code, "message": err.message}
            ) from None
        gw.connections.add(self.namespace, sid, principal, client_ip(environ))
        gw.metrics.socket_connections.labels(self.namespace).inc()
        await self.joined(sid, principal)

    async def joined(self, sid: str, principal: Principal) -> None:
        """Namespaces join their rooms here."""

    async def connected(self, sid: str) -> None:
        """Called once the client has been told it is connected: what a new socket is sent
        first goes here."""

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        principal = self.gateway.connections.principal(self.namespace, sid)
        if principal is not None:
            self.gateway.connections.remove(self.namespace, sid)
            self.gateway.platform.socket_slots.release(principal.user_id, sid)
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
