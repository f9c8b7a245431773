"""Paying through Stripe: checkout, the customer portal, cancel and resume, invoices, the
Stripe webhook, and the admin's plan versions and promotion codes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from handlers.base import endpoint
from handlers.billing.models import (
    Checkout,
    Invoice,
    Invoices,
    PlanPrices,
    Portal,
    Promotion,
    Subscription,
    WebhookReceipt,
)
from handlers.billing.plans import PLAN_ID_PATTERN, PlanId
from handlers.routing import ApiHandler, WebhookHandler
from server.billing.payments import BillingService
from server.core.fields import Body, PageQuery

INVOICE_ID_PATTERN = r"in_[A-Za-z0-9]{1,60}"
PromotionCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9-]{1,40}$")]


class CheckoutBody(Body):
    plan_id: PlanId
    promotion_code: PromotionCode | None = None


class PromotionBody(Body):
    """A discount and its code: exactly one of percent_off and amount_off."""

    code: PromotionCode
    percent_off: float | None = Field(default=None, gt=0, le=100)
    amount_off: int | None = Field(default=None, ge=1, le=1_000_000)
    currency: Literal["usd", "eur", "gbp"] = "usd"
    duration: Literal["once", "repeating", "forever"] = "once"
    duration_in_months: int | None = Field(default=None, ge=1, le=36)
    max_redemptions: int | None = Field(default=None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _one_discount(self) -> PromotionBody:
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValueError("send either percent_off or amount_off")
        if (self.duration == "repeating") != (self.duration_in_months is not None):
            raise ValueError("duration_in_months goes with duration: repeating, and only with it")
        return self


class BillingHandler(ApiHandler):
    def initialize(self, billing: BillingService) -> None:
        self.billing = billing


class CheckoutHandler(BillingHandler):
    @endpoint("Start a Stripe Checkout for a plan (card, Google Pay, Apple Pay)", body=CheckoutBody,
              response=Checkout, auth=True, tags=("billing",), errors=(409, 422, 503))
    async def post(self) -> None:
        body = self.parse(CheckoutBody)
        self.reply(await self.billing.checkout(self.user.user_id, body.plan_id, body.promotion_code))


class PortalHandler(BillingHandler):
    @endpoint("Open the Stripe customer portal (payment methods, plan changes)",
              response=Portal, auth=True, tags=("billing",), errors=(404, 503))
    async def post(self) -> None:
        self.reply(await self.billing.portal(self.user.user_id))


class CancelHandler(BillingHandler):
    @endpoint("Cancel my subscription at the end of the paid period",
              response=Subscription, auth=True, tags=("billing",), errors=(404, 503))
    async def post(self) -> None:
        self.reply(await self.billing.set_cancel_at_period_end(self.user.user_id, True))


class ResumeHandler(BillingHandler):
    @endpoint("Keep my subscription after all", response=Subscription, auth=True, tags=("billing",), errors=(404, 503))
    async def post(self) -> None:
        self.reply(await self.billing.set_cancel_at_period_end(self.user.user_id, False))


class InvoicesHandler(BillingHandler):
    @endpoint("My billing history: amount, status, hosted invoice page and PDF",
              query=PageQuery, response=Invoices, auth=True, tags=("billing",), errors=(400,))
    async def get(self) -> None:
        query = self.parse_query(PageQuery)
        self.reply(await self.billing.invoices(self.user.user_id, query.limit, query.cursor))


class InvoiceHandler(BillingHandler):
    @endpoint("One of my invoices", response=Invoice, auth=True, tags=("billing",), errors=(404,))
    async def get(self, invoice_id: str) -> None:
        self.reply(await self.billing.invoice(self.user.user_id, invoice_id))


class PlanVersionsHandler(BillingHandler):
    @endpoint("Mirror a plan's current price to Stripe; list its price versions", response=PlanPrices,
              permission="plans.manage",
              tags=("admin",), errors=(404, 503))
    async def post(self, plan_id: str) -> None:
        self.reply({"items": await self.billing.mirror_plan_by_id(self.user, plan_id, self.client_ip)})


class PromotionsHandler(BillingHandler):
    @endpoint("Create a discount and its promotion code in Stripe", body=PromotionBody, response=Promotion,
              permission="plans.manage",
              tags=("admin",), errors=(409, 503), status=201)
    async def post(self) -> None:
        body = self.parse(PromotionBody)
        discount = body.model_dump(include={"percent_off", "amount_off", "duration", "duration_in_months"},
                                   exclude_none=True)
        if body.amount_off is not None:
            discount["currency"] = body.currency
        limits = {"max_redemptions": body.max_redemptions} if body.max_redemptions else {}
        self.reply(await self.billing.create_promotion(self.user, body.code, discount, limits, self.client_ip),
                   status=201)


class StripeWebhookHandler(WebhookHandler):
    @endpoint("Stripe events: signature verified, each applied once, in any order", response=WebhookReceipt,
              tags=("billing",),
              errors=(400, 409, 503))
    async def post(self) -> None:
        self.reply(await self.billing.receive(self.body_bytes, self.request.headers.get("Stripe-Signature")))

    def initialize(self, billing: BillingService) -> None:
        self.billing = billing


def routes(billing: BillingService) -> list:
    deps = {"billing": billing}
    return [
        (r"/billing/checkout", CheckoutHandler, deps),
        (r"/billing/portal", PortalHandler, deps),
        (r"/me/subscription/cancel", CancelHandler, deps),
        (r"/me/subscription/resume", ResumeHandler, deps),
        (r"/me/invoices", InvoicesHandler, deps),
        (rf"/me/invoices/(?P<invoice_id>{INVOICE_ID_PATTERN})", InvoiceHandler, deps),
        (rf"/admin/plans/(?P<plan_id>{PLAN_ID_PATTERN})/prices", PlanVersionsHandler, deps),
        (r"/admin/promotions", PromotionsHandler, deps),
    ]


def webhook_routes(billing: BillingService) -> list:
    return [(r"/stripe", StripeWebhookHandler, {"billing": billing})]
