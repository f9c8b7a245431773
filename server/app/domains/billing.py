"""Billing: plans and the one subscription record per account that entitlement reads."""

from __future__ import annotations

from handlers.billing import plans
from handlers.routing import API
from server.app.wiring import Contribution, Wiring
from server.billing.entitlements import EntitlementService
from storage.billing.plans import PlanRepository


def wire(ctx: Wiring) -> Contribution:
    plan_repo = ctx.repo(PlanRepository)
    entitlements = EntitlementService(plan_repo, ctx.services.audit, ctx.platform.pubsub)
    return Contribution(
        services={"entitlements": entitlements, "plans": plan_repo},
        routes={API: plans.routes(entitlements)},
        start=[plan_repo.seed_defaults],
    )
