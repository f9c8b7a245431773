"""The library internals realtime.transport and realtime.rooms build on, pinned.

The fast transport replaces or relies on private parts of python-engineio,
python-socketio and Tornado (what each is used for is listed below). An upgrade that
changes any of them must fail here, loudly, before it can silently reorder packets or
leak sockets: re-read the changed source, adapt realtime/transport.py or rooms.py, then
update the digest.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect

import pytest

VERSIONS = {"tornado": "6.6.1", "python-socketio": "5.18.1", "python-engineio": "4.15.1"}

# sha256 (first 16 hex digits) of each function's source.
DIGESTS = {
    "engineio.base_server.BaseServer.generate_id": "b6a591454237c0bb",
    "socketio.async_pubsub_manager.AsyncPubSubManager.emit": "6cc46e0ff9b6d7cf",
    "socketio.async_pubsub_manager.AsyncPubSubManager.enter_room": "839498e1ae603f2b",
    "engineio.base_socket.BaseSocket.__init__": "8532b631a4dc815f",
    "engineio.async_socket.AsyncSocket.receive": "a91ae36ec2fb5340",
    "engineio.async_socket.AsyncSocket.handle_get_request": "05eaae9f0a60d9be",
    "engineio.async_socket.AsyncSocket._upgrade_websocket": "820b83efe96adb98",
    "engineio.async_socket.AsyncSocket._websocket_handler": "27f120df4d717a24",
    "engineio.async_socket.AsyncSocket.close": "faa2e93902543244",
    "engineio.async_socket.AsyncSocket.schedule_ping": "fe316639159cd70d",
    "engineio.async_server.AsyncServer._handle_connect": "5bd7edc1d1ae115a",
    "engineio.async_server.AsyncServer._service_task": "b6358bda51d0b34b",
    "engineio.async_server.AsyncServer.disconnect": "8bb6448caae41ca6",
    "engineio.async_drivers.tornado.translate_request": "8a4822d6b3160e19",
    "engineio.async_drivers.tornado.get_tornado_handler": "54f7f834cc6b02d7",
    "engineio.async_drivers.tornado.WebSocket": "0266f30227206d43",
    "socketio.base_manager.BaseManager.basic_enter_room": "3f509586d2d7f47e",
    "socketio.base_manager.BaseManager.basic_leave_room": "e27f3eea06d1c6a6",
    "socketio.base_manager.BaseManager.basic_disconnect": "2933b50bc4b2ea7b",
    "socketio.base_manager.BaseManager.get_participants": "7d78ad681c95de5b",
    "socketio.base_manager.BaseManager.pre_connect": "bfdba4c0c8f1bd8a",
    "socketio.base_manager.BaseManager.connect": "a0214ac7cb24346c",
    "socketio.base_manager.BaseManager.pre_disconnect": "18a8d01ed87a9682",
    "socketio.base_manager.BaseManager.get_rooms": "56a1017f85af9f91",
    "socketio.async_manager.AsyncManager.emit": "01ccd5b82b4f955e",
    "socketio.async_pubsub_manager.AsyncPubSubManager._handle_emit": "4284671be955f644",
    "socketio.async_server.AsyncServer._send_packet": "a00022b42c1c29e9",
    "socketio.async_server.AsyncServer._engineio_server_class": "199c42bf149247e0",
    "tornado.iostream.BaseIOStream.write": "359435fb31c50ddb",
    "tornado.iostream.IOStream.write_to_fd": "d84acfd03a8c72e8",
    "tornado.websocket.WebSocketProtocol._abort": "bbcd7cdfc85a2074",
    "tornado.websocket.WebSocketHandler.on_connection_close": "cf3122efb8a275d6",
}

WHY = {
    "generate_id": "RedisRooms tells a socket id (20 url-safe base64 characters) from a room name",
    "AsyncPubSubManager.emit": "RedisRooms sends what is not a plain room emit through it",
    "AsyncPubSubManager.enter_room": "RedisRooms.enter_room wraps it and awaits the subscription",
    "BaseSocket.__init__": "DirectSocket sets the same attributes without the queue",
    "AsyncSocket.receive": "DirectSocket receives packets through it, called from on_message",
    "AsyncSocket.handle_get_request": "reaches _upgrade_websocket for a websocket session",
    "AsyncSocket._upgrade_websocket": "calls the driver's WebSocket with _websocket_handler",
    "AsyncSocket._websocket_handler": "still serves sockets upgraded from polling",
    "AsyncSocket.close": "DirectSocket.close follows it without queue.join",
    "AsyncSocket.schedule_ping": "replaced by the ping wheel; same last_ping protocol",
    "AsyncServer._handle_connect": "EngineServer copies it for websocket sessions",
    "AsyncServer._service_task": "replaced by a sweep of the polling sockets",
    "AsyncServer.disconnect": "closes every socket with close(); DirectSocket removes itself",
    "translate_request": "wrapped; its per-request class is replaced in wsgi.input",
    "get_tornado_handler": "SocketHandler plays its role",
    "WebSocket": "passes tornado_handler to _websocket_handler",
    "basic_": "RoomIndex keeps the socket-to-rooms index around these",
    "get_participants": "the fan-out walks it",
    "connect": "pending lists become sets (append/remove/in/len)",
    "AsyncManager.emit": "RoomIndex.emit replaces it",
    "_handle_emit": "must resolve super().emit to RoomIndex.emit",
    "_send_packet": "the library's sends go through eio.send -> DirectSocket.send",
    "_engineio_server_class": "the gateway's server returns EngineServer from it",
    "BaseIOStream.write": "write_frame uses _write_buffer and write() for the remainder",
    "write_to_fd": "write_frame sends on stream.socket directly when nothing is buffered",
    "_abort": "write_frame aborts a connection whose send failed",
    "on_connection_close": "SocketHandler.on_close closes the Engine.IO socket",
}


def _resolve(path: str) -> object:
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


@pytest.mark.parametrize("dist", sorted(VERSIONS))
def test_library_versions_are_the_ones_read(dist: str) -> None:
    assert importlib.metadata.version(dist) == VERSIONS[dist], (
        f"{dist} changed: re-read the internals pinned in this file before moving the pin")


@pytest.mark.parametrize("path", sorted(DIGESTS))
def test_internals_relied_on_are_unchanged(path: str) -> None:
    source = inspect.getsource(_resolve(path))  # type: ignore[arg-type]
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    why = next((w for key, w in WHY.items() if key in path), "")
    assert digest == DIGESTS[path], f"{path} changed ({why}): adapt realtime/transport.py or rooms.py"


def test_the_pubsub_manager_delivers_locally_through_the_room_index() -> None:
    import socketio
    from socketio.async_pubsub_manager import AsyncPubSubManager

    from realtime.redis_rooms import RedisRooms
    from realtime.rooms import RoomIndex

    mro = RedisRooms.__mro__
    assert mro.index(AsyncPubSubManager) < mro.index(RoomIndex) < mro.index(socketio.AsyncManager)
