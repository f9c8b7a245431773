"""What every process serves beside the domains: the Socket.IO gateway with the live
operations channel, and the health, readiness and metrics probes."""

from __future__ import annotations

from handlers.platform import health
from handlers.routing import INTERNAL, PROBES
from realtime.gateway import Gateway
from realtime.ops import OpsChannel
from server.app.wiring import Contribution, Wiring


def wire(ctx: Wiring) -> Contribution:
    gateway = Gateway(ctx.platform, ctx.services.sessions)
    ops = OpsChannel(gateway)
    return Contribution(
        services={"gateway": gateway, "ops": ops},
        routes={PROBES: health.routes(), INTERNAL: health.internal_routes()},
        namespaces=[ops],
        start=[gateway.start, ops.start],
        stop=[gateway.stop, ops.stop],
    )
