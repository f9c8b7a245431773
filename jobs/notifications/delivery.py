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


class DeliveryWorker(Periodic):
    """A `Periodic` that runs again at once while there is work, and wakes on an enqueue."""

    def __init__(self, delivery: DeliveryService, outbox: Outbox, *, poll_s: float = POLL_S) -> None:
        super().__init__("delivery", poll_s, delivery.run_once)
        self._wake = asyncio.Event()
        outbox.listen(self._wake.set)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                handled = await self.run_now()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery pass failed")
                handled = 0
            self.runs += 1
            if not handled:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)


def schedules(delivery: DeliveryService, outbox: Outbox, notifications: NotificationService) -> list:
    return [
        DeliveryWorker(delivery, outbox),
        Periodic("notification_stragglers", STRAGGLERS_INTERVAL_S, notifications.queue_stragglers,
                 initial_delay_s=5.0),
    ]


def register(queue: JobQueue, releases: ReleaseNotifier) -> None:
    queue.register(JOB_KIND, releases.run)
