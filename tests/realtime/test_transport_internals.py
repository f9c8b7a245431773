"""The library internals realtime.transport, realtime.rooms and the app factory build on, pinned.

The fast transport replaces or relies on private parts of python-engineio,
python-socketio and Tornado, EdgeApplication serves a request without a body
through Tornado's private `_body_future`, and the HTTP edge (handlers.base, the app
factory's Compress) skips or copies a few Tornado steps it runs per request (what each
is used for is listed below). An
upgrade that changes any of them must fail here, loudly, before it can silently reorder
packets, leak sockets or hang a request: re-read the changed source, adapt
realtime/transport.py, rooms.py, server/app/factory.py or handlers/base.py, then update the digest.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect

import pytest

VERSIONS = {"tornado": "6.6.1", "python-socketio": "5.18.1", "python-engineio": "4.15.1"}

# What each internal is relied on for, and the sha256 (first 16 hex digits) of its source.
PINNED = {
    "engineio.base_server.BaseServer.generate_id":
        ("b6a591454237c0bb", "RedisRooms tells a socket id (20 url-safe base64 characters) from a room name"),
    "socketio.async_pubsub_manager.AsyncPubSubManager.emit":
        ("6cc46e0ff9b6d7cf", "RedisRooms sends what is not a plain room emit through it"),
    "socketio.async_pubsub_manager.AsyncPubSubManager.enter_room":
        ("839498e1ae603f2b", "RedisRooms.enter_room wraps it and awaits the subscription"),
    "engineio.base_socket.BaseSocket.__init__":
        ("8532b631a4dc815f", "DirectSocket sets the same attributes without the queue"),
    "engineio.async_socket.AsyncSocket.receive":
        ("a91ae36ec2fb5340", "DirectSocket receives packets through it, called from on_message"),
    "engineio.async_socket.AsyncSocket.handle_get_request":
        ("05eaae9f0a60d9be", "reaches _upgrade_websocket for a websocket session"),
    "engineio.async_socket.AsyncSocket._upgrade_websocket":
        ("820b83efe96adb98", "calls the driver's WebSocket with _websocket_handler"),
    "engineio.async_socket.AsyncSocket._websocket_handler":
        ("27f120df4d717a24", "still serves sockets upgraded from polling"),
    "engineio.async_socket.AsyncSocket.close":
        ("faa2e93902543244", "DirectSocket.close follows it without queue.join"),
    "engineio.async_socket.AsyncSocket.schedule_ping":
        ("fe316639159cd70d", "replaced by the ping wheel; same last_ping protocol"),
    "engineio.async_server.AsyncServer._handle_connect":
        ("5bd7edc1d1ae115a", "EngineServer copies it for websocket sessions"),
    "engineio.async_server.AsyncServer._service_task":
        ("b6358bda51d0b34b", "replaced by a sweep of the polling sockets"),
    "engineio.async_server.AsyncServer.disconnect":
        ("8bb6448caae41ca6", "closes every socket with close(); DirectSocket removes itself"),
    "engineio.async_drivers.tornado.translate_request":
        ("8a4822d6b3160e19", "wrapped; its per-request class is replaced in wsgi.input"),
    "engineio.async_drivers.tornado.get_tornado_handler":
        ("54f7f834cc6b02d7", "SocketHandler plays its role"),
    "engineio.async_drivers.tornado.WebSocket":
        ("0266f30227206d43", "passes tornado_handler to _websocket_handler"),
    "socketio.base_manager.BaseManager.basic_enter_room":
        ("3f509586d2d7f47e", "RoomIndex keeps the socket-to-rooms index around these"),
    "socketio.base_manager.BaseManager.basic_leave_room":
        ("e27f3eea06d1c6a6", "RoomIndex keeps the socket-to-rooms index around these"),
    "socketio.base_manager.BaseManager.basic_disconnect":
        ("2933b50bc4b2ea7b", "RoomIndex keeps the socket-to-rooms index around these"),
    "socketio.base_manager.BaseManager.get_participants":
        ("7d78ad681c95de5b", "the fan-out walks it"),
    "socketio.base_manager.BaseManager.pre_connect":
        ("bfdba4c0c8f1bd8a", "pending lists become sets (append/remove/in/len)"),
    "socketio.base_manager.BaseManager.connect":
        ("a0214ac7cb24346c", "pending lists become sets (append/remove/in/len)"),
    "socketio.base_manager.BaseManager.pre_disconnect":
        ("18a8d01ed87a9682", "pending lists become sets (append/remove/in/len)"),
    "socketio.base_manager.BaseManager.get_rooms":
        ("56a1017f85af9f91", "RoomIndex keeps the socket-to-rooms index around these"),
    "socketio.async_manager.AsyncManager.emit":
        ("01ccd5b82b4f955e", "RoomIndex.emit replaces it"),
    "socketio.async_pubsub_manager.AsyncPubSubManager._handle_emit":
        ("4284671be955f644", "must resolve super().emit to RoomIndex.emit"),
    "socketio.async_server.AsyncServer._send_packet":
        ("a00022b42c1c29e9", "the library's sends go through eio.send -> DirectSocket.send"),
    "socketio.async_server.AsyncServer._engineio_server_class":
        ("199c42bf149247e0", "the gateway's server returns EngineServer from it"),
    "tornado.iostream.BaseIOStream.write":
        ("359435fb31c50ddb", "write_frame uses _write_buffer and write() for the remainder"),
    "tornado.iostream.IOStream.write_to_fd":
        ("d84acfd03a8c72e8", "write_frame sends on stream.socket directly when nothing is buffered"),
    "tornado.websocket.WebSocketProtocol._abort":
        ("bbcd7cdfc85a2074", "write_frame aborts a connection whose send failed"),
    "tornado.websocket.WebSocketHandler.on_connection_close":
        ("cf3122efb8a275d6", "SocketHandler.on_close closes the Engine.IO socket"),
    "tornado.web.Application.get_handler_delegate":
        ("7ade687ca1a45687", "EdgeApplication turns off streaming for a request without a body"),
    "tornado.web._HandlerDelegate.headers_received":
        ("4a4c287d0037130a", "creates request._body_future and resolves it when a streamed body ends"),
    "tornado.web._HandlerDelegate.finish":
        ("72d2b0ba365c14cf", "resolves request._body_future when a streamed body ends"),
    "tornado.web._HandlerDelegate.execute":
        ("cb7b86c7889faf9f", "runs the handler; its _execute awaits the body future"),
    "tornado.web.RequestHandler._execute":
        ("9b08100bb022ac0d", "awaits request._body_future before the method of a streaming handler"),
    "tornado.web.RequestHandler.on_connection_close":
        ("487585eea49d1f76", "fails request._body_future when the client goes away"),
    "tornado.web.RequestHandler.__init__":
        ("167c83fa981ec45c", "BaseHandler.__init__ does the same, with `ui` made on first use"),
    "tornado.httputil.HTTPHeaders.__init__":
        ("697d107cd0e89225", "handlers.base._headers_of sets the two attributes it sets, without it"),
    "json.encoder.JSONEncoder.iterencode":
        ("0a9b6ccb5629e721", "server.core.json_text makes its C encoder once with the arguments given here"),
    "tornado.web.GZipContentEncoding.transform_first_chunk":
        ("faaa4bbbe5fae2ea", "Compress adds Accept-Encoding to Vary itself when it does not gzip"),
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


@pytest.mark.parametrize("path", sorted(PINNED))
def test_internals_relied_on_are_unchanged(path: str) -> None:
    source = inspect.getsource(_resolve(path))  # type: ignore[arg-type]
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    expected, why = PINNED[path]
    assert digest == expected, f"{path} changed ({why}): adapt the code that relies on it"


def test_the_pubsub_manager_delivers_locally_through_the_room_index() -> None:
    import socketio
    from socketio.async_pubsub_manager import AsyncPubSubManager

    from realtime.redis_rooms import RedisRooms
    from realtime.rooms import RoomIndex

    mro = RedisRooms.__mro__
    assert mro.index(AsyncPubSubManager) < mro.index(RoomIndex) < mro.index(socketio.AsyncManager)
