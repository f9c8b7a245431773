"""Namespace `/ops`: a metrics snapshot about once a second for staff who run the service.

Each process publishes its own snapshot on the pub/sub bus; every process aggregates the
latest one from each live process and emits the total to its own local ops sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from realtime.gateway import AuthedNamespace, Gateway
from server.core.permissions import Principal

log = logging.getLogger("nameless.realtime")

SNAPSHOT_CHANNEL = "ops.snapshots"
STALE_AFTER_S = 3.0


class OpsChannel(AuthedNamespace):
    permission = "ops.view"

    def __init__(self, gateway: Gateway, interval: float = 1.0) -> None:
        super().__init__("/ops", gateway)
        self.interval = interval
        self._latest: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None

    @property
    def room(self) -> str:
        return f"ops:{self.gateway.process_id}"

    async def joined(self, sid: str, principal: Principal) -> None:
        await self.gateway.sio.enter_room(sid, self.room, namespace=self.namespace)
        await self.gateway.sio.emit("metrics", self.aggregate(), to=sid, namespace=self.namespace,
                                    ignore_queue=True)

    async def start(self) -> None:
        self._unsubscribe = await self.gateway.platform.pubsub.subscribe(SNAPSHOT_CHANNEL, self._on_snapshot)
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._unsubscribe is not None:
            await self._unsubscribe()

    async def _on_snapshot(self, snapshot: dict[str, Any]) -> None:
        if isinstance(snapshot, dict) and isinstance(snapshot.get("process"), str):
            snapshot["_seen"] = time.monotonic()
            self._latest[snapshot["process"]] = snapshot

    def aggregate(self) -> dict[str, Any]:
        now = time.monotonic()
        local = self.gateway.local_snapshot()
        local["_seen"] = now
        self._latest[local["process"]] = local
        live = [s for s in self._latest.values() if now - s["_seen"] <= STALE_AFTER_S]
        self._latest = {s["process"]: s for s in live}
        connections: dict[str, int] = {}
        for snap in live:
            for ns, n in snap.get("connections", {}).items():
                connections[ns] = connections.get(ns, 0) + int(n)
        return {
            "connections": connections,
            "rooms": sum(int(s.get("rooms", 0)) for s in live),
            "events_per_s": sum(int(s.get("events_per_s", 0)) for s in live),
            "emit_p99_ms": max((float(s.get("emit_p99_ms", 0)) for s in live), default=0.0),
            "processes": sorted(
                ({k: v for k, v in s.items() if k != "_seen"} for s in live), key=lambda s: s["process"]
            ),
            "at_ms": int(time.time() * 1000),
        }

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.sleep(self.interval)
                await self.gateway.platform.pubsub.publish(SNAPSHOT_CHANNEL, self.gateway.local_snapshot())
                if self.gateway.connections.count(self.namespace):
                    await self.gateway.sio.emit("metrics", self.aggregate(), room=self.room,
                                                namespace=self.namespace, ignore_queue=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ops snapshot failed")
