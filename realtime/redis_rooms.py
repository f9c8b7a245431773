"""Room emits across processes, sent only to the processes that hold members.

python-socketio's Redis manager publishes every emit on one channel that every process
reads, decodes and looks up, members or not. Here each room has a channel of its own
(`<channel>:<namespace>:<room>`), subscribed through the platform's pub/sub when the first
local socket joins the room and dropped when the last one leaves, so an emit reaches
exactly the processes with members. The message carries the Socket.IO packet already
encoded: a receiving process parses it once and writes the same frame to all its
members (realtime.rooms). The emitting process publishes before it writes to its own
members, so every process with members writes its share at the same time. A user's room
(`user:<id>`) is a room like any other, so per-user emits travel the same way.

The library's own channel still carries what is not a plain room emit: emits with an ack
callback, to a list of rooms, to a whole namespace, or to a socket id held by another
process, and the cross-process disconnect and join/leave requests.

Failure modes (docs/realtime.md): emits published while Redis is down are lost, as with
the library's manager (the pub/sub client re-subscribes every room when it reconnects);
a process that dies takes its subscriptions with it (Redis drops them with the
connection), so nothing is left to clean up.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import socketio

from realtime.rooms import RoomIndex

_SID = re.compile(r"[A-Za-z0-9_-]{20}")  # engineio's generate_id: 15 bytes, url-safe base64

PUBLISH_HEAD_START = 0.05  # seconds a room emit waits for its publish before writing to local members

PubSubHandler = Callable[[dict[str, Any]], Awaitable[None]]


class RoomPubSub(Protocol):
    """What RedisRooms needs of the platform's pub/sub (`Platform.pubsub`)."""

    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    async def subscribe(self, channel: str, handler: PubSubHandler) -> Callable[[], Awaitable[None]]: ...


class RedisRooms(socketio.AsyncRedisManager, RoomIndex):
    """python-socketio's Redis manager with a channel per room and local encode-once delivery."""

    def __init__(self, url: str, *, channel: str, pubsub: RoomPubSub) -> None:
        super().__init__(url, channel=channel)
        self.room_pubsub = pubsub
        self.subscriptions: dict[str, Callable[[], Awaitable[None]]] = {}
        self.room_messages = 0  # room-channel messages from other processes delivered here
        self._wanted: dict[str, bool] = {}
        self._syncing: asyncio.Task[None] | None = None

    def room_channel(self, namespace: str, room: str) -> str:
        return f"{self.channel}:{namespace}:{room}"

    # --- subscriptions follow local membership -------------------------------------------

    def room_opened(self, namespace: str, room: str) -> None:
        self._want(self.room_channel(namespace, room), True)

    def room_closed(self, namespace: str, room: str) -> None:
        self._want(self.room_channel(namespace, room), False)

    def _want(self, channel: str, subscribed: bool) -> None:
        self._wanted[channel] = subscribed
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.ensure_future(self._sync())

    async def _sync(self) -> None:
        """One worker applies the changes in order, so a leave and a re-join cannot race."""
        while self._wanted:
            channel = next(iter(self._wanted))
            subscribed = self._wanted.pop(channel)
            try:
                if subscribed and channel not in self.subscriptions:
                    self.subscriptions[channel] = await self.room_pubsub.subscribe(channel, self._on_room_message)
                elif not subscribed and channel in self.subscriptions:
                    await self.subscriptions.pop(channel)()
            except Exception:  # Redis away: the pub/sub client re-subscribes when it is back
                self._get_logger().exception("room subscription change failed")

    async def enter_room(self, sid: str, namespace: str, room: str, eio_sid: str | None = None) -> None:
        """Returns once this process listens to the room, so an emit that follows the join
        (from any process) reaches the new member."""
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        if self._syncing is not None and not self._syncing.done():
            await asyncio.shield(self._syncing)

    # --- emitting --------------------------------------------------------------------------

    async def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
                   skip_sid: Any = None, callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        room = to or room
        namespace = namespace or "/"
        local_sid = isinstance(room, str) and self.is_sid_room(namespace, room)
        if kwargs.get("ignore_queue") or local_sid:
            return await RoomIndex.emit(self, event, data, namespace, room=room, skip_sid=skip_sid, callback=callback)
        if callback is not None or not isinstance(room, str) or _SID.fullmatch(room):
            return await super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid,
                                      callback=callback)
        args = list(data) if isinstance(data, tuple) else [data]
        pkt = self.server.packet_class(socketio.packet.EVENT, namespace=namespace, data=[event, *args])
        packets = self.encode(pkt)
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        parts = [p.data for p, _ in packets]
        publishing = asyncio.ensure_future(self.room_pubsub.publish(self.room_channel(namespace, room), {
            "host": self.host_id, "namespace": namespace, "room": room,
            "skip": [s for s in skip if s is not None],
            "parts": [base64.b64encode(p).decode() if isinstance(p, bytes) else p for p in parts],
            "binary": [i for i, p in enumerate(parts) if isinstance(p, bytes)],
        }))
        # The other processes start writing while this one does: the local pass waits for
        # the publish, but never longer than PUBLISH_HEAD_START, so a slow Redis cannot
        # hold back local members.
        await asyncio.wait((publishing,), timeout=PUBLISH_HEAD_START)
        if namespace in self.rooms:
            self.deliver(packets, namespace, room, skip)
        await publishing

    async def _on_room_message(self, message: dict[str, Any]) -> None:
        if message.get("host") == self.host_id:
            return  # delivered locally when it was emitted
        namespace, room = message["namespace"], message["room"]
        if namespace not in self.rooms:
            return
        binary = set(message.get("binary", ()))
        parts = [base64.b64decode(p) if i in binary else p for i, p in enumerate(message["parts"])]
        self.room_messages += 1
        self.deliver(self.packets(parts), namespace, room, set(message.get("skip", ())))
