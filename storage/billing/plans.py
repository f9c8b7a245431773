"""Subscription plans and the one subscription record per account."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

INDEXES = {
    "plans": [IndexModel([("sort", ASCENDING)], name="order")],
    "subscriptions": [IndexModel([("status", ASCENDING)], name="status")],
}

DEFAULT_PLANS = [
    {"_id": "basic", "name": "Basic", "price_cents": 799, "currency": "usd", "interval": "month",
     "max_height": 480, "streams": 1, "active": True, "sort": 1},
    {"_id": "standard", "name": "Standard", "price_cents": 1299, "currency": "usd", "interval": "month",
     "max_height": 1080, "streams": 2, "active": True, "sort": 2},
    {"_id": "premium", "name": "Premium", "price_cents": 1899, "currency": "usd", "interval": "month",
     "max_height": 2160, "streams": 4, "active": True, "sort": 3},
]


class PlanRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._plans = db.plans
        self._subs = db.subscriptions

    async def seed_defaults(self) -> None:
        """Idempotent: creates the default plans once, never overwrites an admin's edits."""
        for plan in DEFAULT_PLANS:
            fields = {k: v for k, v in plan.items() if k != "_id"}
            await self._plans.update_one({"_id": plan["_id"]}, {"$setOnInsert": fields}, upsert=True)

    async def list(self, *, active_only: bool) -> list[dict[str, Any]]:
        query = {"active": True} if active_only else {}
        return [p async for p in self._plans.find(query).sort("sort", ASCENDING).limit(50)]

    async def get(self, plan_id: str) -> dict[str, Any] | None:
        return await self._plans.find_one({"_id": plan_id})

    async def create(self, plan: dict[str, Any]) -> bool:
        """Add a plan after the others; False if the id is taken."""
        last = await self._plans.find_one({}, sort=[("sort", DESCENDING)])
        try:
            await self._plans.insert_one({**plan, "sort": int((last or {}).get("sort") or 0) + 1})
        except DuplicateKeyError:
            return False
        return True

    async def update(self, plan_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        await self._plans.update_one({"_id": plan_id}, {"$set": changes})
        return await self.get(plan_id)

    async def subscription(self, user_id: str) -> dict[str, Any] | None:
        return await self._subs.find_one({"_id": user_id})

    async def subscriptions(self, user_ids: list[str]) -> list[dict[str, Any]]:
        """The records of these accounts (those that have one), in one query."""
        return [doc async for doc in self._subs.find({"_id": {"$in": user_ids}})]

    async def put_subscription(self, user_id: str, record: dict[str, Any]) -> None:
        await self._subs.replace_one({"_id": user_id}, {"_id": user_id, **record}, upsert=True)

    async def replace_subscription_if(self, user_id: str, seen: dict[str, Any] | None,
                                      record: dict[str, Any]) -> bool:
        """Replace the record only if it is still the one read (`seen`, or none): an
        optimistic write, so exactly one writer acts on each change."""
        doc = {"_id": user_id, **record}
        if seen is None:
            try:
                await self._subs.insert_one(doc)
            except DuplicateKeyError:
                return False
            return True
        guard: dict[str, Any] = {"_id": user_id}
        for key in ("stripe_synced_ns", "updated_ms"):
            guard[key] = seen[key] if key in seen else {"$exists": False}
        result = await self._subs.replace_one(guard, doc)
        return result.matched_count == 1
