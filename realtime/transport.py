"""The Engine.IO websocket transport, written for fan-out.

python-engineio gives every websocket a writer Task fed through an asyncio queue (woken
by `wait_for`, a Task, future and timer per packet), a reader Task doing the same, and a
sleeping Task per ping. Here a socket opened on the websocket transport is a
`DirectSocket`: a packet is encoded into its websocket frame at once and written to the
connection synchronously (`SocketHandler.write_frame`), frames received from Tornado are
handed straight to `receive`, and one `PingWheel` per server pings every socket. Sockets
that start on long-polling (and so upgrade later) keep the library's own socket class,
which stays correct, only slower.

Everything written to a socket, by the room fan-out or by the library's own sends (acks,
connect answers, pings, close), goes through the same synchronous write, so packets
reach a client in the order they were sent. A socket whose connection cannot keep up
holds at most `WRITE_BUFFER_LIMIT` bytes in Tornado's buffer: past it, it is closed with
the reason `slow consumer`, so one stalled phone neither delays the others nor grows the
process.

The library internals this relies on are pinned by tests/realtime/test_transport_internals.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import struct
import time
from collections.abc import Callable
from typing import Any

import engineio
import tornado.iostream
import tornado.websocket
from engineio import packet as eio_packet
from engineio.async_drivers import tornado as tornado_driver
from engineio.async_socket import AsyncSocket

log = logging.getLogger("nameless.realtime")

WRITE_BUFFER_LIMIT = 256 * 1024  # bytes a socket may have queued in Tornado before it is closed
SLOW_CONSUMER = "slow consumer"
_TEXT, _BINARY = 0x81, 0x82  # FIN + opcode


def frame(encoded: str | bytes) -> bytes:
    """One unmasked websocket frame (server to client) holding an encoded Engine.IO packet."""
    if isinstance(encoded, str):
        payload, first = encoded.encode("utf-8"), _TEXT
    else:
        payload, first = encoded, _BINARY
    size = len(payload)
    if size < 126:
        header = struct.pack("BB", first, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def packet_frame(pkt: eio_packet.Packet) -> bytes:
    return frame(pkt.encode())


_PING = packet_frame(eio_packet.Packet(eio_packet.PING))
_CLOSE = packet_frame(eio_packet.Packet(eio_packet.CLOSE))


class _Body:
    """The request body as python-engineio reads it (`await environ['wsgi.input'].read(n)`);
    its Tornado driver defines an equivalent class inside every request and the environ,
    kept for the socket's lifetime, keeps that class object alive."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes | None) -> None:
        self.payload = payload or b""

    async def read(self, length: int | None = None) -> bytes:
        if length is None:
            chunk, self.payload = self.payload, b""
        else:
            chunk, self.payload = self.payload[:length], self.payload[length:]
        return chunk


def _translate_request(handler: Any) -> dict[str, Any]:
    environ: dict[str, Any] = tornado_driver.translate_request(handler)
    environ["wsgi.input"] = _Body(handler.request.body)
    return environ


class PingWheel:
    """All pings and ping timeouts of one server on one timer, in one-second slots, instead
    of a sleeping Task per socket. A socket sits in at most one live slot (`due`); a slot
    entry whose socket has since been rescheduled is skipped."""

    def __init__(self, server: EngineServer) -> None:
        self.server = server
        self._slots: dict[int, list[DirectSocket]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.pings = 0

    def add(self, sock: DirectSocket, delay: float) -> None:
        slot = math.ceil(time.monotonic() + delay)
        sock.due = slot
        self._slots.setdefault(slot, []).append(sock)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + 1.0, self._tick)

    def __len__(self) -> int:
        return sum(len(s) for s in self._slots.values())

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        for slot in [s for s in self._slots if s <= now]:
            for sock in self._slots.pop(slot):
                if sock.due == slot and not (sock.closing or sock.closed):
                    self._fire(sock)
        if self._slots:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + 1.0, self._tick)

    def _fire(self, sock: DirectSocket) -> None:
        if sock.last_ping is None:  # the interval has passed: ping, then wait for the pong
            sock.last_ping = time.time()
            sock.write(_PING)
            self.pings += 1
            self.add(sock, self.server.ping_timeout + 1)
        elif time.time() - sock.last_ping > self.server.ping_timeout:
            self.spawn(sock.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT))
        else:
            self.add(sock, 1)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._slots.clear()


class DirectSocket(AsyncSocket):
    """An Engine.IO socket on the websocket transport, without queue or Tasks."""

    def __init__(self, server: EngineServer, sid: str) -> None:
        # BaseSocket.__init__ without the asyncio queue nothing here reads.
        self.server = server
        self.sid = sid
        self.queue = None
        self.last_ping: float | None = time.time()
        self.connected = False
        self.upgrading = False
        self.upgraded = False
        self.closing = False
        self.closed = False
        self.session: dict[str, Any] = {}
        self.handler: SocketHandler | None = None
        self.pending: list[bytes] | None = []  # frames sent before the websocket is attached
        self.due = 0

    def write(self, data: bytes) -> None:
        """Write one pre-built frame now, or keep it until the websocket is attached."""
        if self.closed:
            return
        if self.handler is None:
            if self.pending is not None:
                self.pending.append(data)
            return
        buffered = self.handler.write_frame(data)
        if buffered > WRITE_BUFFER_LIMIT:
            self.overflow()

    def overflow(self) -> None:
        handler, self.handler = self.handler, None  # nothing more is written to it
        self.server.note_slow_consumer()
        if handler is not None:
            handler.engine_socket = None
            handler.close(1013, SLOW_CONSUMER)
        self.server.ping_wheel.spawn(self.close(wait=False, abort=True, reason=SLOW_CONSUMER))

    async def send(self, pkt: eio_packet.Packet) -> None:
        self.write(packet_frame(pkt))

    async def poll(self) -> list[eio_packet.Packet]:  # polling only; never reached
        raise engineio.exceptions.QueueEmpty()

    def schedule_ping(self) -> None:
        if self.last_ping:
            self.last_ping = None
            self.server.ping_wheel.add(self, self.server.ping_interval)

    async def check_ping_timeout(self) -> bool:
        if self.closed:
            raise engineio.exceptions.SocketIsClosedError()
        return True  # the ping wheel closes sockets whose pong is late

    async def _websocket_handler(self, ws: Any) -> None:
        """Attach the Tornado connection and return: no reader or writer Task stays behind."""
        handler: SocketHandler = ws.tornado_handler
        self.connected = True
        self.upgraded = True
        pending, self.pending = self.pending or [], None
        if handler.ws_connection is None:  # gone before it was attached
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
            return
        self.handler = handler
        handler.engine_socket = self
        for data in pending:
            self.write(data)

    async def close(self, wait: bool = True, abort: bool = False, reason: str | None = None) -> None:
        if self.closed or self.closing:
            return
        self.closing = True
        await self.server._trigger_event(
            "disconnect", self.sid, reason or self.server.reason.SERVER_DISCONNECT, run_async=False)
        if not abort:
            self.write(_CLOSE)
        self.closed = True
        self.server.sockets.pop(self.sid, None)
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.engine_socket = None
            if handler.ws_connection is not None:
                handler.close()


class EngineServer(engineio.AsyncServer):
    """python-engineio's server choosing `DirectSocket` for websocket sessions, pinging
    through one wheel, and watching the long-polling sockets from one sweep every
    ping_timeout instead of a timer per socket per cycle."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._async = dict(self._async, translate_request=_translate_request)
        self.ping_wheel = PingWheel(self)
        self.on_slow_consumer: Callable[[], None] | None = None

    def note_slow_consumer(self) -> None:
        log.info("slow socket closed", extra={"reason": SLOW_CONSUMER})
        if self.on_slow_consumer is not None:
            self.on_slow_consumer()

    async def _handle_connect(self, environ: dict[str, Any], transport: str, jsonp_index: int | None = None) -> Any:
        if transport != "websocket":
            return await super()._handle_connect(environ, transport, jsonp_index)
        if self.start_service_task:
            self.start_service_task = False
            self.service_task_handle = self.start_background_task(self._service_task)
        sid = self.generate_id()
        sock = DirectSocket(self, sid)
        self.sockets[sid] = sock
        await sock.send(eio_packet.Packet(eio_packet.OPEN, {
            "sid": sid,
            "upgrades": self._upgrades(sid, transport),
            "pingTimeout": int(self.ping_timeout * 1000),
            "pingInterval": int(self.ping_interval + self.ping_interval_grace_period) * 1000,
            "maxPayload": self.max_http_buffer_size,
        }))
        ret = await self._trigger_event("connect", sid, environ, run_async=False)
        if ret is not None and ret is not True:
            del self.sockets[sid]
            self.logger.warning("Application rejected connection")
            return self._unauthorized(ret or None)
        sock.schedule_ping()
        return await sock.handle_get_request(environ)

    async def _service_task(self) -> None:
        self.service_task_event = self.create_event()
        while not self.service_task_event.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.service_task_event.wait(), timeout=self.ping_timeout)
                break
            for sock in list(self.sockets.values()):
                if sock.closed:
                    self.sockets.pop(sock.sid, None)
                elif not sock.closing and type(sock) is not DirectSocket:
                    with contextlib.suppress(Exception):
                        await sock.check_ping_timeout()

    async def shutdown(self) -> None:
        self.ping_wheel.stop()
        await super().shutdown()


class SocketHandler(tornado.websocket.WebSocketHandler):
    """The Tornado end of the Engine.IO endpoint (the role of python-engineio's Tornado
    handler), writing pre-built frames straight to the stream."""

    engine: EngineServer  # set by the subclass the gateway builds
    engine_socket: DirectSocket | None = None
    _received: asyncio.Queue[Any] | None = None  # only for a socket upgraded from polling

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            ret = super().get(*args, **kwargs)
            if inspect.iscoroutine(ret):
                await ret
        else:
            await self.engine.handle_request(self)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        # Tornado leaves Nagle on: a second small frame written before the client acked the
        # first (an event then the ack of the control that caused it) waits out the
        # client's delayed ACK, about 40 ms. Every frame here is a complete message.
        self.set_nodelay(True)
        self.engine.ping_wheel.spawn(self.engine.handle_request(self))

    async def post(self, *args: Any, **kwargs: Any) -> None:
        await self.engine.handle_request(self)

    async def options(self, *args: Any, **kwargs: Any) -> None:
        await self.engine.handle_request(self)

    def on_message(self, message: str | bytes) -> Any:
        sock = self.engine_socket
        if sock is None:
            self._queue().put_nowait(message)
            return None
        if len(message) > self.engine.max_http_buffer_size:
            self.close(1009, "packet is too large")
            return None
        return sock.receive(eio_packet.Packet(encoded_packet=message))

    async def get_next_message(self) -> Any:
        return await self._queue().get()

    def _queue(self) -> asyncio.Queue[Any]:
        if self._received is None:
            self._received = asyncio.Queue()
        return self._received

    def on_close(self) -> None:
        sock = self.engine_socket
        if sock is not None:
            self.engine_socket = None
            sock.handler = None
            self.engine.ping_wheel.spawn(
                sock.close(wait=False, abort=True, reason=self.engine.reason.TRANSPORT_CLOSE))
        else:
            self._queue().put_nowait(None)

    def write_frame(self, data: bytes) -> int:
        """Write a complete frame; returns the bytes still buffered for this connection
        (-1 if it is closed). When nothing is buffered the frame goes to the socket in one
        send() with no Future; the rest, if any, is left to Tornado's stream."""
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            return -1
        stream = conn.stream
        try:
            if not stream._write_buffer and type(stream) is tornado.iostream.IOStream:
                try:
                    sent = stream.socket.send(data)
                except BlockingIOError:
                    sent = 0
                if sent == len(data):
                    return 0
                data = data[sent:]
            stream.write(data)
        except (OSError, tornado.iostream.StreamClosedError):
            conn._abort()
            return -1
        return len(stream._write_buffer)

    def get_compression_options(self) -> None:
        # Socket.IO frames are small JSON; permessage-deflate would keep a zlib pair per
        # browser socket (~190 KB each instead of ~42 KB; bench/README.md) and defeat
        # writing one pre-built frame to every member.
        return None
