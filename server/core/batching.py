"""Point reads that arrive together, read together.

A burst of connects or requests each reads one document by key. While one read of many
keys is on its way, the keys asked for meanwhile wait and go out as the next one, so a
burst costs a few round trips instead of one per caller; a caller alone pays one round
trip as before. A read never joins a batch already sent, so it sees every write that
finished before it was asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class BatchedReads(Generic[K]):
    def __init__(self, load_many: Callable[[list[K]], Awaitable[dict[K, Any]]]) -> None:
        self._load_many = load_many
        self._waiting: dict[K, list[asyncio.Future[Any]]] = {}
        self._worker: asyncio.Task[None] | None = None

    async def get(self, key: K) -> Any | None:
        """The document for `key`, or None when there is none."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._worker is None:
            self._worker = asyncio.ensure_future(self._run())
        return await future

    async def _run(self) -> None:
        batch: dict[K, list[asyncio.Future[Any]]] = {}
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, {}
                try:
                    found = await self._load_many(list(batch))
                except Exception as exc:  # every caller of the batch gets the error
                    _settle(batch, error=exc)
                else:
                    _settle(batch, found=found)
                batch = {}
        except asyncio.CancelledError:
            for waiting in (batch, self._waiting):
                for futures in waiting.values():
                    for future in futures:
                        future.cancel()
            self._waiting = {}
            raise
        finally:
            self._worker = None


def _settle(batch: dict[Any, list[asyncio.Future[Any]]], *, found: dict[Any, Any] | None = None,
            error: BaseException | None = None) -> None:
    for key, futures in batch.items():
        for future in futures:
            if future.done():  # its caller gave up
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result((found or {}).get(key))
