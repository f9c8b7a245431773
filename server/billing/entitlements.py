"""What a viewer may watch, decided in one place from the account's one subscription
record: plan (max quality, simultaneous streams), status, period end, and its source
(Stripe billing, or a complimentary grant by staff). Playback and watch parties ask
this service, never the record directly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.core import errors
from server.core.clock import iso, now, to_ms
from server.core.permissions import Principal
from server.staff.audit import AuditLog
from storage.billing.plans import PlanRepository
from storage.state.pubsub import PubSub

ENTITLED_STATUSES = ("active", "trialing", "past_due")  # past_due keeps access while Stripe retries
DAY_MS = 86_400_000
ENTITLEMENTS_CHANNEL = "entitlements.changed"  # {"user_id"} or {"all": true}


@dataclass(frozen=True)
class Entitlement:
    plan_id: str
    max_height: int
    streams: int
    source: str


def entitles(sub: dict[str, Any] | None, now_ms: int) -> bool:
    """Whether a subscription record lets its account watch at `now_ms`: a past_due one
    only until its grace period ends."""
    if sub is None or sub.get("status") not in ENTITLED_STATUSES:
        return False
    if sub.get("status") == "past_due" and int(sub.get("grace_until_ms") or now_ms + 1) <= now_ms:
        return False
    return int(sub.get("current_period_end_ms") or 0) > now_ms


def shown_status(sub: dict[str, Any], now_ms: int) -> str:
    """The status the account sees: a complimentary grant past its end reads as canceled
    (Stripe sends its own status changes for paid ones)."""
    expired = int(sub.get("current_period_end_ms") or 0) <= now_ms
    if sub.get("status") == "incomplete":  # a checkout that was never paid
        return "none"
    return "canceled" if expired and sub.get("source") == "complimentary" else sub.get("status", "none")


def plan_view(plan: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": plan["_id"], "name": plan["name"], "price_cents": plan["price_cents"], "currency": plan["currency"],
        "interval": plan["interval"], "max_height": plan["max_height"], "streams": plan["streams"],
        "trial_days": int(plan.get("trial_days") or 0),
    }


def admin_plan_view(plan: dict[str, Any]) -> dict[str, Any]:
    return plan_view(plan) | {"active": bool(plan.get("active"))}


class EntitlementService:
    def __init__(self, plans: PlanRepository, audit: AuditLog, pubsub: PubSub) -> None:
        self._plans = plans
        self._audit = audit
        self._pubsub = pubsub

    async def _announce(self, message: dict[str, Any]) -> None:
        """Whoever caches entitlement (media access on every process) drops what it holds."""
        await self._pubsub.publish(ENTITLEMENTS_CHANNEL, message)

    async def announce_user(self, user_id: str) -> None:
        """The account's record changed elsewhere (billing): playback re-reads it."""
        await self._announce({"user_id": user_id})

    async def plans(self) -> list[dict[str, Any]]:
        return [plan_view(p) for p in await self._plans.list(active_only=True)]

    async def admin_plans(self) -> list[dict[str, Any]]:
        return [admin_plan_view(p) for p in await self._plans.list(active_only=False)]

    async def create_plan(self, actor: Principal, plan: dict[str, Any], ip: str) -> dict[str, Any]:
        fields = {k: v for k, v in plan.items() if k != "id"}
        if not await self._plans.create({"_id": plan["id"], **fields}):
            raise errors.Conflict("A plan with this id exists already.", code="plan_exists")
        await self._audit.record(actor, "plan.create", target_type="plan", target_id=plan["id"], ip=ip,
                                 details=fields)
        created = await self._plans.get(plan["id"])
        assert created is not None
        return admin_plan_view(created)

    async def current(self, user_id: str) -> Entitlement | None:
        sub = await self._plans.subscription(user_id)
        if sub is None or not entitles(sub, to_ms(now())):
            return None
        plan = await self._plans.get(sub["plan_id"])
        if plan is None:
            return None
        return Entitlement(plan["_id"], int(plan["max_height"]), int(plan["streams"]), sub.get("source", "stripe"))

    async def require(self, user_id: str) -> Entitlement:
        entitlement = await self.current(user_id)
        if entitlement is None:
            raise errors.PaymentRequired("Choose a plan to start watching.", code="subscription_required")
        return entitlement

    async def subscription_view(self, user_id: str) -> dict[str, Any]:
        sub = await self._plans.subscription(user_id)
        if sub is None:
            return {"status": "none", "plan": None, "current_period_end": None, "cancel_at_period_end": False,
                    "source": None}
        plan = await self._plans.get(sub["plan_id"])
        return {
            "status": shown_status(sub, to_ms(now())),
            "plan": plan_view(plan) if plan else None,
            "current_period_end": iso(sub.get("current_period_end_ms")),
            "cancel_at_period_end": bool(sub.get("cancel_at_period_end")),
            "source": sub.get("source"),
        }

    async def grant_complimentary(self, actor: Principal, user_id: str, plan_id: str, days: int | None,
                                  ip: str, *, ends_ms: int | None = None) -> dict[str, Any]:
        """A plan for `days` from now, or until `ends_ms`."""
        if await self._plans.get(plan_id) is None:
            raise errors.Unprocessable("No such plan.", code="plan_not_found")
        at = to_ms(now())
        end = ends_ms if ends_ms is not None else at + int(days or 0) * DAY_MS
        if not at < end <= at + 3650 * DAY_MS:
            raise errors.Unprocessable("The end date must be in the future and within ten years.",
                                       code="invalid_end_date", details={"fields": {"ends_at": "out of range"}})
        current = await self._plans.subscription(user_id)
        if current is not None and current.get("source") == "stripe" and current.get("status") in ENTITLED_STATUSES:
            raise errors.Conflict("This account pays through Stripe; cancel that first.", code="paid_subscription")
        await self._plans.put_subscription(user_id, {
            "plan_id": plan_id, "status": "active", "source": "complimentary",
            "current_period_end_ms": end, "cancel_at_period_end": True, "updated_ms": to_ms(now()),
        })
        await self._audit.record(actor, "subscription.complimentary", target_type="user", target_id=user_id,
                                 ip=ip, details={"plan_id": plan_id, "days": days, "ends_at": iso(end)})
        await self._announce({"user_id": user_id})
        return await self.subscription_view(user_id)

    async def end_complimentary(self, actor: Principal, user_id: str, ip: str) -> dict[str, Any]:
        current = await self._plans.subscription(user_id)
        if current is None or current.get("source") != "complimentary":
            raise errors.NotFound("No complimentary plan on this account.", code="complimentary_not_found")
        await self._plans.put_subscription(user_id, {**{k: v for k, v in current.items() if k != "_id"},
                                                     "status": "canceled", "current_period_end_ms": to_ms(now()),
                                                     "updated_ms": to_ms(now())})
        await self._audit.record(actor, "subscription.complimentary_end", target_type="user", target_id=user_id,
                                 ip=ip)
        await self._announce({"user_id": user_id})
        return await self.subscription_view(user_id)

    async def update_plan(self, actor: Principal, plan_id: str, changes: dict[str, Any], ip: str) -> dict[str, Any]:
        plan = await self._plans.update(plan_id, changes) if changes else await self._plans.get(plan_id)
        if plan is None:
            raise errors.NotFound("No such plan.", code="plan_not_found")
        await self._audit.record(actor, "plan.update", target_type="plan", target_id=plan_id, ip=ip,
                                 details=changes)
        await self._announce({"all": True})
        return admin_plan_view(plan)
