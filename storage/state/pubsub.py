"""Broadcast of small JSON messages between processes (session revocations, job events).

In-process delivery serves one process; with REDIS_URL messages cross processes through
Redis pub/sub. Socket.IO fan-out has its own manager and does not go through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis.asyncio import Redis

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class PubSub(Protocol):
    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    async def subscribe(self, channel: str, handler: Handler) -> Callable[[], Awaitable[None]]: ...

    async def close(self) -> None: ...


async def _deliver(handler: Handler, message: dict[str, Any]) -> None:
    try:
        await handler(message)
    except Exception:
        log.exception("pubsub handler failed")


class MemoryPubSub:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        payload = json.loads(json.dumps(message))
        for handler in list(self._handlers.get(channel, ())):
            task = asyncio.ensure_future(_deliver(handler, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def subscribe(self, channel: str, handler: Handler) -> Callable[[], Awaitable[None]]:
        self._handlers.setdefault(channel, []).append(handler)

        async def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.get(channel, []).remove(handler)

        return unsubscribe

    async def close(self) -> None:
        self._handlers.clear()
        for task in list(self._tasks):
            task.cancel()


class RedisPubSub:
    def __init__(self, redis: Redis, prefix: str = "nameless:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._handlers: dict[str, list[Handler]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.errors = 0
        self.on_error: Callable[[], None] = lambda: None  # metrics hook

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self._redis.publish(self._prefix + channel, json.dumps(message))

    def wire_name(self, channel: str) -> str:
        """The channel as Redis names it: a store script that publishes in the same atomic
        step as its write (party commits) publishes here, to the same subscribers."""
        return self._prefix + channel

    async def subscribe(self, channel: str, handler: Handler) -> Callable[[], Awaitable[None]]:
        name = self._prefix + channel
        if name not in self._handlers:
            self._handlers[name] = []
            await self._pubsub.subscribe(name)
        self._handlers[name].append(handler)
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())

        async def unsubscribe() -> None:
            handlers = self._handlers.get(name, [])
            with contextlib.suppress(ValueError):
                handlers.remove(handler)
            if not handlers and name in self._handlers:
                del self._handlers[name]
                await self._pubsub.unsubscribe(name)

        return unsubscribe

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                self.on_error()
                log.exception("redis pubsub read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if not message or message.get("type") != "message":
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            try:
                payload = json.loads(message["data"])
            except (TypeError, ValueError):
                self.errors += 1
                self.on_error()
                continue
            for handler in list(self._handlers.get(channel, ())):
                await _deliver(handler, payload)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._pubsub.aclose()
