"""Run one coroutine every N seconds in the serving process, until stopped.

A failing run is logged and retried at the next tick; a run never overlaps the previous
one. Several processes may run the same job: the jobs here are written so that this is
safe (conditional updates, whole-document replacements). A costly one takes a `claim`: a
tick runs only when the claim is granted, so a fleet runs it about once per interval
instead of once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("nameless.jobs")


class Periodic:
    def __init__(self, name: str, interval_s: float, run: Callable[[], Awaitable[Any]], *,
                 initial_delay_s: float = 0.0, claim: Callable[[], Awaitable[bool]] | None = None) -> None:
        self.name = name
        self.interval_s = interval_s
        self._run = run
        self._initial_delay_s = initial_delay_s
        self._claim = claim
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self._loop(), name=f"job:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_now(self) -> Any:
        return await self._run()

    async def _loop(self) -> None:
        if self._initial_delay_s:
            await asyncio.sleep(self._initial_delay_s)
        while True:
            try:
                if self._claim is None or await self._claim():
                    await self._run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job failed", extra={"job": self.name})
            self.runs += 1
            await asyncio.sleep(self.interval_s)
