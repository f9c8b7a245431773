"""What every process serves beside the domains: the Socket.IO gateway with the live
operations channel, the health, readiness and metrics probes, and the landing, docs and
favicon pages."""

from __future__ import annotations

from handlers.platform import health, pages
from handlers.routing import INTERNAL, PAGES, PROBES, VENDOR
from realtime.gateway import Gateway
from realtime.ops import OpsChannel
from server.app.wiring import Contribution, Wiring
from server.platform.job_queue import JobQueue
from storage.job_queue import JobRepository


def job_queue(ctx: Wiring) -> JobQueue:
    """The process's durable job queue: domains register job kinds on it as they are wired;
    media runs its workers."""
    return ctx.once("job_queue", lambda: JobQueue(ctx.repo(JobRepository),
                                                  lease_ms=int(ctx.settings.job_lease_seconds * 1000),
                                                  concurrency=max(1, ctx.settings.job_workers)))


def wire(ctx: Wiring) -> Contribution:
    gateway = Gateway(ctx.platform, ctx.services.sessions)
    ops = OpsChannel(gateway)
    return Contribution(
        services={"gateway": gateway, "ops": ops},
        routes={PROBES: health.routes(), INTERNAL: health.internal_routes(), PAGES: pages.routes(),
                VENDOR: pages.vendor_routes()},
        namespaces=[ops],
        start=[gateway.start, ops.start],
        stop=[gateway.stop, ops.stop],
    )
