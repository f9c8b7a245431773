"""Encode-once fan-out and the direct websocket transport against real clients: the
order of packets on every transport, ping timeouts from the wheel, slow consumers, and
leaving every room on disconnect."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.websocket
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from realtime.gateway import user_room
from realtime.transport import WRITE_BUFFER_LIMIT, DirectSocket
from server.notifications.announcements import ANNOUNCEMENTS_ROOM
from tests.helpers import NamespaceClient, RedisServer, eventually, signup

pytestmark = pytest.mark.asyncio

TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"], "upgraded": ["polling", "websocket"]}




async def test_order_holds_across_fast_and_library_sends_pings_and_close(server) -> None:
    """Room emits (encoded once), per-recipient emits with acks and the library's own send
    path, interleaved while the wheel pings, reach a websocket, a polling and an upgraded
    client in the order they were sent, and the server's close comes after all of them."""
    gw = server.runtime.services.gateway
    gw.sio.eio.ping_interval = 1
    user = await signup(server.client)
    clients = {name: NamespaceClient("/") for name in TRANSPORTS}
    try:
        for name, client in clients.items():
            await client.sio.connect(server.url, auth={"token": user["access_token"]}, namespaces=["/"],
                                     transports=TRANSPORTS[name], wait_timeout=5)
        await eventually(lambda: clients["upgraded"].sio.transport() == "websocket", "upgrade")
        eio_sids = {name: c.sio.eio.sid for name, c in clients.items()}
        kinds = {name: type(gw.sio.eio.sockets[eio_sid]) for name, eio_sid in eio_sids.items()}
        assert kinds == {"websocket": DirectSocket, "polling": AsyncSocket, "upgraded": AsyncSocket}
        sids = {name: c.sio.get_sid("/") for name, c in clients.items()}
        acks: list[str] = []
        wheel = gw.sio.eio.ping_wheel
        pings_before, seq = wheel.pings, 0
        while seq < 60 or wheel.pings < pings_before + 2:
            for name in sids:
                await gw.sio._send_packet(eio_sids[name], gw.sio.packet_class(
                    sio_packet.EVENT, namespace="/", data=["seq", seq]))
            await gw.emit("seq", seq + 1, room=user_room(user["user"]["id"]))
            for name, sid in sids.items():
                await gw.sio.emit("seq", seq + 2, to=sid, callback=lambda *_, n=name: acks.append(n))
            seq += 3
            await asyncio.sleep(0.02)  # pacing, so that pings fall between the sends
        await eventually(lambda: len(acks) == seq, "every ack")
        await gw.emit("seq", seq, room=user_room(user["user"]["id"]))
        for sid in sids.values():
            await gw.sio.disconnect(sid, namespace="/")
        for name, client in clients.items():
            await eventually(lambda c=client: not c.sio.namespaces, f"{name} disconnected")
            assert client.of("seq") == list(range(seq + 1)), name
    finally:
        for client in clients.values():
            await client.close()


async def connect_raw(url: str, token: str) -> tornado.websocket.WebSocketClientConnection:
    conn = await tornado.websocket.websocket_connect(
        url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket")
    assert (await conn.read_message()).startswith("0{")
    await conn.write_message("40" + json.dumps({"token": token}))
    assert (await conn.read_message()).startswith("40{")
    return conn


async def test_a_client_that_stops_answering_pings_is_closed(server) -> None:
    gw = server.runtime.services.gateway
    gw.sio.eio.ping_interval, gw.sio.eio.ping_timeout = 1, 1
    user = await signup(server.client)
    conn = await connect_raw(server.url, user["access_token"])
    seen = []
    while (message := await asyncio.wait_for(conn.read_message(), 10)) is not None:
        seen.append(message)
    assert seen == ["2", "1"]  # one ping, unanswered; then Engine.IO's close
    await eventually(lambda: gw.connections.user_count(user["user"]["id"]) == 0, "socket forgotten")


async def test_a_slow_consumer_is_closed_and_counted_without_holding_back_the_others(server) -> None:
    gw = server.runtime.services.gateway
    user = await signup(server.client)
    reader = NamespaceClient("/")
    port = int(server.url.rsplit(":", 1)[1])
    stalled_r, stalled_w = await asyncio.open_connection("127.0.0.1", port, limit=4096)
    try:
        await reader.sio.connect(server.url, auth={"token": user["access_token"]}, namespaces=["/"],
                                 transports=["websocket"], wait_timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        stalled_w.write((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                         f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        await stalled_r.readuntil(b"\r\n\r\n")
        await stalled_r.readuntil(b"}")  # Engine.IO open
        body = ("40" + json.dumps({"token": user["access_token"]})).encode()
        mask = os.urandom(4)
        stalled_w.write(bytes([0x81, 0x80 | 126]) + len(body).to_bytes(2, "big") + mask
                        + bytes(b ^ mask[i % 4] for i, b in enumerate(body)))
        await stalled_r.readuntil(b"}")  # Socket.IO connected; from here on it reads nothing
        await eventually(lambda: gw.connections.user_count(user["user"]["id"]) == 2, "both connected")
        counter = gw.metrics.socket_slow_consumers
        before = counter._value.get()
        payload = "x" * 32_000
        sent = 0
        while gw.connections.user_count(user["user"]["id"]) == 2:
            assert sent < (32 * 1024 * 1024 + WRITE_BUFFER_LIMIT) // len(payload), "never closed"
            for _ in range(4):  # 128 KB a batch: the reading client never nears the limit
                await gw.emit_to_user(user["user"]["id"], "bulk", {"n": sent, "pad": payload})
                sent += 1
            await eventually(lambda n=sent: len(reader.of("bulk")) == n, "the reading client keeps up")
        assert counter._value.get() == before + 1
        await reader.wait("bulk", lambda d: d["n"] == sent - 1)
        assert [d["n"] for d in reader.of("bulk")] == list(range(sent))
    finally:
        stalled_w.close()
        await reader.close()


async def test_websocket_frames_are_sent_without_nagle(server) -> None:
    """With Nagle on, a frame written while the client has not yet acked the previous one
    (a control's ack right after its event) waits out the client's delayed ACK, ~40 ms."""
    gw = server.runtime.services.gateway
    user = await signup(server.client)
    client = NamespaceClient("/")
    try:
        await client.sio.connect(server.url, auth={"token": user["access_token"]}, namespaces=["/"],
                                 transports=["websocket"], wait_timeout=5)
        sock = gw.sio.eio.sockets[client.sio.eio.sid]
        await eventually(lambda: sock.handler is not None, "websocket attached")
        stream_socket = sock.handler.ws_connection.stream.socket
        assert stream_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        await client.close()


async def test_disconnect_leaves_every_room_of_the_socket_and_only_those(server) -> None:
    gw = server.runtime.services.gateway
    user = await signup(server.client)
    a, b = NamespaceClient("/"), NamespaceClient("/")
    try:
        for c in (a, b):
            await c.sio.connect(server.url, auth={"token": user["access_token"]}, namespaces=["/"],
                                transports=["websocket"], wait_timeout=5)
        sid_a, sid_b = a.sio.get_sid("/"), b.sio.get_sid("/")
        for room in ("r1", "r2", "r3"):
            await gw.sio.enter_room(sid_a, room, namespace="/")
        await gw.sio.enter_room(sid_b, "r2", namespace="/")
        manager = gw.sio.manager
        assert set(manager.get_rooms(sid_a, "/")) == {"r1", "r2", "r3", sid_a, user_room(user["user"]["id"]),
                                                    ANNOUNCEMENTS_ROOM}
        await a.sio.disconnect()
        await eventually(lambda: ("/", sid_a) not in manager.rooms_of, "index emptied")
        rooms: dict[str, Any] = manager.rooms["/"]
        assert "r1" not in rooms and "r3" not in rooms and sid_a not in rooms
        assert list(rooms["r2"]) == [sid_b] and sid_a not in rooms[None]
        await gw.emit("after", 1, room="r2")
        assert await b.wait("after") == 1
    finally:
        await a.close()
        await b.close()


async def test_a_room_emit_reaches_only_the_processes_that_hold_members(start_server, redis_url) -> None:
    shared = {"REDIS_URL": redis_url, "NAMELESS_MONGO_DB": f"test_{os.urandom(6).hex()}"}
    a, b = await start_server(**shared), await start_server(**shared)
    ga, gb = a.runtime.services.gateway, b.runtime.services.gateway
    both, only_a = await signup(a.client), await signup(a.client)
    clients = [(NamespaceClient("/"), served, user) for served, user in ((a, both), (b, both), (a, only_a))]
    try:
        for client, served, user in clients:
            await client.sio.connect(served.url, auth={"token": user["access_token"]}, namespaces=["/"],
                                     transports=["websocket"], wait_timeout=5)
        on_a, on_b, a_only = (c for c, _, _ in clients)
        channel_both = gb.sio.manager.room_channel("/", user_room(both["user"]["id"]))
        channel_a_only = gb.sio.manager.room_channel("/", user_room(only_a["user"]["id"]))
        assert channel_both in gb.sio.manager.subscriptions and channel_a_only not in gb.sio.manager.subscriptions
        await ga.emit_to_user(only_a["user"]["id"], "one", {"n": 1})
        await ga.emit_to_user(both["user"]["id"], "two", {"n": 2})
        assert await on_b.wait("two") == {"n": 2} and await on_a.wait("two") == {"n": 2}
        assert await a_only.wait("one") == {"n": 1}
        assert gb.sio.manager.room_messages == 1  # the emit to a room with no member on B never reached it
        assert on_b.of("one") == [] and len(on_a.of("two")) == 1
        await gb.emit_to_user(only_a["user"]["id"], "three", {"n": 3})  # from a process without members
        assert await a_only.wait("three") == {"n": 3}
        await on_b.close()
        await eventually(lambda: channel_both not in gb.sio.manager.subscriptions, "last leave unsubscribes")
    finally:
        for client, _, _ in clients:
            await client.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own (never the shared one): the test stops it."""
    own = RedisServer()
    own.start()
    yield own
    own.stop()


async def test_local_members_are_written_while_the_publish_waits_on_redis(own_redis, start_server) -> None:
    # The emit publishes before it writes locally, so the other processes start at once;
    # but a Redis that does not answer must not hold back this process's own members.
    shared = {"REDIS_URL": own_redis.url, "NAMELESS_MONGO_DB": f"test_{os.urandom(6).hex()}",
              "NAMELESS_DEPENDENCY_TIMEOUT_MS": "60000"}  # the stopped Redis is waited for, not given up on
    a, b = await start_server(**shared), await start_server(**shared)
    viewer = await signup(a.client)
    on_a, on_b = NamespaceClient("/"), NamespaceClient("/")
    try:
        for client, served in ((on_a, a), (on_b, b)):
            await client.sio.connect(served.url, auth={"token": viewer["access_token"]}, namespaces=["/"],
                                     transports=["websocket"], wait_timeout=5)
        assert own_redis.proc is not None
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        try:
            emitting = asyncio.ensure_future(
                a.runtime.services.gateway.emit("held", {"n": 1}, room=ANNOUNCEMENTS_ROOM))
            assert await on_a.wait("held") == {"n": 1}
            assert not emitting.done()  # still waiting for Redis to take the publish
            assert on_b.of("held") == []
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        await emitting
        assert await on_b.wait("held") == {"n": 1}
        assert len(on_a.of("held")) == 1
    finally:
        await on_a.close()
        await on_b.close()
