"""Plans, my subscription, and staff grants of complimentary plans."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from handlers.base import endpoint
from handlers.billing.models import AdminPlan, AdminPlans, Plans, Subscription
from handlers.routing import ApiHandler
from server.billing.entitlements import EntitlementService
from server.core.fields import Body, ShortName, Timestamp
from server.core.ids import ID_PATTERN

PLAN_ID_PATTERN = r"[a-z0-9_-]{1,40}"
PlanId = Annotated[str, StringConstraints(pattern=rf"^{PLAN_ID_PATTERN}$")]


class ComplimentaryBody(Body):
    """How long: `days` from now, or until `ends_at`; exactly one."""

    plan_id: PlanId
    days: int | None = Field(default=None, ge=1, le=3650)
    ends_at: Timestamp | None = None

    @model_validator(mode="after")
    def _one_end(self) -> ComplimentaryBody:
        if (self.days is None) == (self.ends_at is None):
            raise ValueError("send either days or ends_at")
        return self


class NewPlan(Body):
    id: PlanId
    name: ShortName
    price_cents: int = Field(ge=0, le=1_000_000)
    currency: Literal["usd", "eur", "gbp"] = "usd"
    interval: Literal["month", "year"] = "month"
    max_height: int = Field(ge=240, le=4320)
    streams: int = Field(ge=1, le=10)
    trial_days: int = Field(default=0, ge=0, le=90)
    active: bool = True


class PlanPatch(Body):
    name: ShortName | None = None
    price_cents: int | None = Field(default=None, ge=0, le=1_000_000)
    max_height: int | None = Field(default=None, ge=240, le=4320)  # the lowest rung of the ladder
    streams: int | None = Field(default=None, ge=1, le=10)
    trial_days: int | None = Field(default=None, ge=0, le=90, description="0: no trial")
    active: bool | None = None


class EntitlementHandler(ApiHandler):
    def initialize(self, entitlements: EntitlementService) -> None:
        self.entitlements = entitlements


class PlansHandler(EntitlementHandler):
    @endpoint("Plans with prices, max quality and simultaneous streams", response=Plans, tags=("billing",))
    async def get(self) -> None:
        self.reply({"items": await self.entitlements.plans(), "next_cursor": None})


class MySubscriptionHandler(EntitlementHandler):
    @endpoint("My subscription: status, plan, period end", response=Subscription, auth=True, tags=("billing",))
    async def get(self) -> None:
        self.reply(await self.entitlements.subscription_view(self.user.user_id))


class ComplimentaryHandler(EntitlementHandler):
    @endpoint("Grant a complimentary plan for some days or until a date", body=ComplimentaryBody, response=Subscription,
              permission="users.entitlements", tags=("admin",), errors=(404, 409, 422))
    async def post(self, user_id: str) -> None:
        body = self.parse(ComplimentaryBody)
        ends_ms = int(body.ends_at.timestamp() * 1000) if body.ends_at is not None else None
        self.reply(await self.entitlements.grant_complimentary(self.user, user_id, body.plan_id, body.days,
                                                               self.client_ip, ends_ms=ends_ms))

    @endpoint("End a complimentary plan now", response=Subscription, permission="users.entitlements", tags=("admin",),
              errors=(404,))
    async def delete(self, user_id: str) -> None:
        self.reply(await self.entitlements.end_complimentary(self.user, user_id, self.client_ip))


class AdminPlanHandler(EntitlementHandler):
    @endpoint("Edit a plan", body=PlanPatch, response=AdminPlan, permission="plans.manage", tags=("admin",),
              errors=(404,))
    async def patch(self, plan_id: str) -> None:
        body = self.parse(PlanPatch)
        self.reply(await self.entitlements.update_plan(self.user, plan_id, body.model_dump(exclude_none=True),
                                                       self.client_ip))


class AdminPlansHandler(EntitlementHandler):
    @endpoint("Every plan, retired ones too", response=AdminPlans, permission="plans.manage", tags=("admin",))
    async def get(self) -> None:
        self.reply({"items": await self.entitlements.admin_plans(), "next_cursor": None})

    @endpoint("Add a plan (mirrored to a Stripe product and price at its first checkout)", body=NewPlan,
              response=AdminPlan, permission="plans.manage", tags=("admin",), errors=(409,), status=201)
    async def post(self) -> None:
        body = self.parse(NewPlan)
        self.reply(await self.entitlements.create_plan(self.user, body.model_dump(), self.client_ip), status=201)


def routes(entitlements: EntitlementService) -> list:
    deps = {"entitlements": entitlements}
    return [
        (r"/plans", PlansHandler, deps),
        (r"/me/subscription", MySubscriptionHandler, deps),
        (rf"/admin/users/(?P<user_id>{ID_PATTERN})/complimentary", ComplimentaryHandler, deps),
        (r"/admin/plans", AdminPlansHandler, deps),
        (rf"/admin/plans/(?P<plan_id>{PLAN_ID_PATTERN})", AdminPlanHandler, deps),
    ]
