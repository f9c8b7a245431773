"""What every process serves beside the domains: the Socket.IO gateway with the live
operations channel, the health, readiness and metrics probes, and the landing, docs and
favicon pages."""

from __future__ import annotations

from handlers.platform import health, pages
from handlers.routing import INTERNAL, PAGES, PROBES, VENDOR
from realtime.gateway import Gateway
from realtime.ops import OpsChannel
from server.app.wiring import Contribution, Wiring


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
