"""Who is in which room, and delivering one emit to all of them.

python-socketio's manager creates a Task per recipient of a room emit and finds a
socket's rooms by scanning every room of the namespace when it leaves (a mass disconnect
of 10,000 sockets in rooms of their own is 10,000 x 10,000 lookups). `RoomIndex` keeps
the library's room table and API, and adds:

- encode once: an emit without an ack callback is encoded once into its Socket.IO
  packet, Engine.IO packet and websocket frame, and the same bytes are written to every
  member synchronously in one pass (`DirectSocket.write`). Members still on long-polling
  get the Engine.IO packet on their queue, in the same pass, so order holds for them too;
  an emit with an ack callback is encoded per recipient (each carries its own ack id)
  and written in the same way;
- a reverse index from socket to its rooms, so leaving costs O(own rooms);
- pending-connect and pending-disconnect sets instead of lists (the library tests
  membership in them on every emit-time `is_connected`).

`LocalRooms` is the one-process manager; `RedisRooms` (realtime.redis_rooms) the
cross-process one.
"""

from __future__ import annotations

from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from realtime.transport import DirectSocket, packet_frame


class _SidSet(dict[str, None]):
    """A set answering the list methods python-socketio's manager calls on its pending lists."""

    def append(self, sid: str) -> None:
        self[sid] = None

    def remove(self, sid: str) -> None:
        del self[sid]


class _Pending(dict[str, _SidSet]):
    def __setitem__(self, namespace: str, sids: Any) -> None:
        super().__setitem__(namespace, sids if isinstance(sids, _SidSet) else _SidSet.fromkeys(sids))


class RoomIndex(socketio.AsyncManager):
    """The in-process room table with encode-once delivery and a socket-to-rooms index."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending_connect = _Pending()
        self.pending_disconnect = _Pending()
        self.rooms_of: dict[tuple[str, str], set[str | None]] = {}

    # --- membership ----------------------------------------------------------------------

    def basic_enter_room(self, sid: str, namespace: str, room: str | None, eio_sid: str | None = None) -> None:
        created = room not in self.rooms.get(namespace, ())
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.rooms_of.setdefault((namespace, sid), set()).add(room)
        if created and room is not None and room != sid:
            self.room_opened(namespace, room)

    def basic_leave_room(self, sid: str, namespace: str, room: str | None) -> None:
        super().basic_leave_room(sid, namespace, room)
        own = self.rooms_of.get((namespace, sid))
        if own is not None:
            own.discard(room)
            if not own:
                del self.rooms_of[(namespace, sid)]
        if room is not None and room != sid and room not in self.rooms.get(namespace, ()):
            self.room_closed(namespace, room)

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        if namespace not in self.rooms:
            return
        for room in list(self.rooms_of.pop((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[str]:
        return [room for room in self.rooms_of.get((namespace, sid), ()) if room is not None]

    def room_opened(self, namespace: str, room: str) -> None:
        """The first local member joined the room."""

    def room_closed(self, namespace: str, room: str) -> None:
        """The last local member left the room."""

    # --- delivery ------------------------------------------------------------------------

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
                   callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        room = to or room
        if namespace not in self.rooms:
            return
        args = list(data) if isinstance(data, tuple) else ([] if data is None else [data])
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        if callback is None:
            pkt = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args])
            self.deliver(self.encode(pkt), namespace, room, skip)
            return
        for sid, eio_sid in list(self.get_participants(namespace, room)):
            if sid not in skip:
                pkt = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args],
                                               id=self._generate_ack_id(sid, callback))
                self.write(eio_sid, self.encode(pkt))

    @classmethod
    def encode(cls, pkt: Any) -> list[tuple[eio_packet.Packet, bytes]]:
        """A Socket.IO packet as Engine.IO packets (one, plus one per binary attachment),
        each with its websocket frame."""
        encoded = pkt.encode()
        return cls.packets(encoded if isinstance(encoded, list) else [encoded])

    @staticmethod
    def packets(parts: list[str | bytes]) -> list[tuple[eio_packet.Packet, bytes]]:
        eio_pkts = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
        return [(p, packet_frame(p)) for p in eio_pkts]

    def deliver(self, packets: list[tuple[eio_packet.Packet, bytes]], namespace: str, room: Any,
                skip: set[Any] = frozenset()) -> int:  # type: ignore[assignment]
        """Write already encoded packets to every local member of the room; returns how many."""
        sent = 0
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid not in skip:
                self.write(eio_sid, packets)
                sent += 1
        return sent

    def write(self, eio_sid: str, packets: list[tuple[eio_packet.Packet, bytes]]) -> None:
        sock = self.server.eio.sockets.get(eio_sid)
        if sock is None or sock.closed:
            return
        if type(sock) is DirectSocket:
            for _, data in packets:
                sock.write(data)
        else:  # the library's socket (long-polling, or upgraded from it): its own queue
            for pkt, _ in packets:
                sock.queue.put_nowait(pkt)


class LocalRooms(RoomIndex):
    """One process, no Redis."""

