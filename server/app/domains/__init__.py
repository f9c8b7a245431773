"""The domains in wiring order: each uses the services of the ones before it (and the
outbox, which identity needs before notifications is wired, through `Wiring.once`)."""

from __future__ import annotations

from server.app.domains import billing, catalog, identity, media, notifications, party, platform, staff, support
from server.app.wiring import Product, build
from server.platform import Platform

DOMAINS = [identity.wire, platform.wire, notifications.wire, staff.wire, catalog.wire, billing.wire, media.wire,
           party.wire, support.wire]


def wire_product(platform_: Platform) -> Product:
    product = build(platform_, DOMAINS)
    product.services.gateway.register(*product.namespaces)
    return product
