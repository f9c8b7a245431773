"""Delivery in a serving process: a worker that sends what the outbox holds as soon as it
is queued (woken by the outbox, polling as a safety net), and every 30 s a sweep that
queues the deliveries of notifications a stopped process stored but did not queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from jobs.periodic import Periodic
from server.notifications.delivery import DeliveryService
from server.notifications.inbox import NotificationService
from server.notifications.outbox import Outbox
from server.notifications.releases import JOB_KIND, ReleaseNotifier
from server.platform.job_queue import JobQueue

log = logging.getLogger("nameless.jobs.delivery")

POLL_S = 1.0
STRAGGLERS_INTERVAL_S = 30.0


class DeliveryWorker:
    def __init__(self, delivery: DeliveryService, outbox: Outbox, *, poll_s: float = POLL_S) -> None:
        self._delivery = delivery
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        outbox.listen(self._wake.set)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="job:delivery")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                handled = await self._delivery.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery pass failed")
                handled = 0
            if not handled:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)


def schedules(delivery: DeliveryService, outbox: Outbox, notifications: NotificationService) -> list:
    return [
        DeliveryWorker(delivery, outbox),
        Periodic("notification_stragglers", STRAGGLERS_INTERVAL_S, notifications.queue_stragglers,
                 initial_delay_s=5.0),
    ]


def register(queue: JobQueue, releases: ReleaseNotifier) -> None:
    queue.register(JOB_KIND, releases.run)
