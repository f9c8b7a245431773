"""Billing: plans, the one subscription record per account that entitlement reads, and
paid subscriptions through Stripe (checkout, portal, webhooks, invoices)."""

from __future__ import annotations

from handlers.billing import payments, plans
from handlers.routing import API, WEBHOOKS
from server.app.wiring import Contribution, Wiring
from server.billing.entitlements import EntitlementService
from server.billing.payments import BillingConfig, BillingService
from server.billing.stripe_api import StripeApi
from storage.billing.plans import PlanRepository
from storage.billing.stripe import BillingRepository
from storage.identity.users import UserRepository


def wire(ctx: Wiring) -> Contribution:
    s = ctx.settings
    plan_repo = ctx.repo(PlanRepository)
    entitlements = EntitlementService(plan_repo, ctx.services.audit, ctx.platform.pubsub)
    secret = s.stripe_secret_key.get_secret_value() if s.stripe_secret_key else None
    config = BillingConfig(
        secret_key=secret,
        webhook_secret=s.stripe_webhook_secret.get_secret_value() if s.stripe_webhook_secret else None,
        success_url=s.billing_success_url, cancel_url=s.billing_cancel_url,
        portal_return_url=s.billing_portal_return_url, webhook_tolerance=s.stripe_webhook_tolerance,
        grace_days=s.billing_grace_days, event_lease=s.stripe_event_lease,
    )
    api = StripeApi(secret, s.stripe_api_base) if secret else None
    billing = BillingService(config, api, plan_repo, ctx.repo(BillingRepository), ctx.repo(UserRepository),
                             entitlements, ctx.services.gateway, ctx.services.notifications.notify,
                             ctx.services.audit)
    return Contribution(
        services={"entitlements": entitlements, "plans": plan_repo, "billing": billing},
        routes={API: [*plans.routes(entitlements), *payments.routes(billing)],
                WEBHOOKS: payments.webhook_routes(billing)},
        start=[plan_repo.seed_defaults],
        stop=[api.close] if api is not None else [],
    )
