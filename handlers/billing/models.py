"""What the plan and subscription endpoints reply."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from handlers.models import Page, Reply


class Plan(Reply):
    id: str
    name: str
    price_cents: int
    currency: str
    interval: str
    max_height: int = Field(description="the highest rendition the plan plays")
    streams: int = Field(description="simultaneous streams")
    trial_days: int = Field(default=0, description="free days before the first charge of a new subscription")


class Plans(Page[Plan]):
    pass


class AdminPlan(Plan):
    active: bool


class AdminPlans(Page[AdminPlan]):
    pass


class Subscription(Reply):
    status: Literal["none", "trialing", "active", "past_due", "canceled"]
    plan: Plan | None
    current_period_end: dt.datetime | None
    cancel_at_period_end: bool
    source: Literal["stripe", "complimentary"] | None


class Checkout(Reply):
    checkout_url: str = Field(description="Stripe Checkout's page (card, Apple Pay, Google Pay)")
    session_id: str


class Portal(Reply):
    url: str = Field(description="Stripe's customer portal for this account")


class Invoice(Reply):
    id: str
    number: str | None
    status: str | None = Field(description="draft, open, paid, uncollectible or void")
    amount: int | None = Field(description="what was paid (paid invoices) or is due, in the currency's smallest unit")
    amount_due: int | None = Field(description="in the currency's smallest unit")
    amount_paid: int | None
    currency: str | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None
    created_at: dt.datetime | None


class Invoices(Page[Invoice]):
    pass


class PlanPrice(Reply):
    price_id: str
    amount: int
    currency: str
    interval: str
    created_at: dt.datetime | None


class PlanPrices(Reply):
    items: list[PlanPrice]


class Promotion(Reply):
    code: str
    promotion_code_id: str
    coupon_id: str


class WebhookReceipt(Reply):
    received: bool
    duplicate: bool = Field(description="this event was applied before; nothing changed")
