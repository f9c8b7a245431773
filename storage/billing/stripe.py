"""What billing keeps of Stripe: the one customer per account, the prices each plan was
mirrored to (every version), the ids of the webhook events already applied, and a copy of
each invoice for the billing history.

Stripe stays the source of truth: records here are written from objects fetched from
Stripe, each stamped with the time its fetch started (`synced_ns`), and a write carrying an
older fetch never replaces a newer one.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

INDEXES = {
    "billing_customers": [IndexModel([("customer_id", ASCENDING)], name="customer", unique=True)],
    "billing_prices": [IndexModel([("plan_id", ASCENDING), ("amount", ASCENDING), ("currency", ASCENDING),
                                   ("interval", ASCENDING)], name="version")],
    # The event id is the document id: the unique index that makes each event apply once.
    "billing_events": [IndexModel([("received_ms", DESCENDING)], name="received")],
    "billing_invoices": [IndexModel([("user_id", ASCENDING), ("created", DESCENDING)], name="history")],
}


class BillingRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._customers = db.billing_customers
        self._prices = db.billing_prices
        self._events = db.billing_events
        self._invoices = db.billing_invoices

    # --- customers ---------------------------------------------------------------------

    async def customer_of(self, user_id: str) -> str | None:
        doc = await self._customers.find_one({"_id": user_id})
        return doc["customer_id"] if doc else None

    async def user_of(self, customer_id: str) -> str | None:
        doc = await self._customers.find_one({"customer_id": customer_id})
        return doc["_id"] if doc else None

    async def link_customer(self, user_id: str, customer_id: str, at_ms: int) -> str:
        """Record the account's customer unless one is already recorded; returns the one kept."""
        try:
            await self._customers.update_one(
                {"_id": user_id}, {"$setOnInsert": {"customer_id": customer_id, "created_ms": at_ms}}, upsert=True)
        except DuplicateKeyError:
            pass  # the same customer raced in for the same account
        kept = await self.customer_of(user_id)
        assert kept is not None
        return kept

    # --- prices (plan versions) --------------------------------------------------------

    async def price_for(self, plan_id: str, amount: int, currency: str, interval: str) -> str | None:
        doc = await self._prices.find_one({"plan_id": plan_id, "amount": amount, "currency": currency,
                                           "interval": interval}, sort=[("created_ms", ASCENDING)])
        return doc["_id"] if doc else None

    async def add_price(self, price_id: str, plan_id: str, amount: int, currency: str, interval: str,
                        at_ms: int) -> None:
        await self._prices.update_one({"_id": price_id}, {"$setOnInsert": {
            "plan_id": plan_id, "amount": amount, "currency": currency, "interval": interval, "created_ms": at_ms,
        }}, upsert=True)

    async def plan_of_price(self, price_id: str) -> str | None:
        doc = await self._prices.find_one({"_id": price_id})
        return doc["plan_id"] if doc else None

    async def prices_of(self, plan_id: str) -> list[dict[str, Any]]:
        return [p async for p in self._prices.find({"plan_id": plan_id}).sort("created_ms", ASCENDING).limit(100)]

    # --- events ------------------------------------------------------------------------

    async def claim_event(self, event_id: str, event_type: str, at_ms: int) -> bool:
        """True for the first delivery of this event id, False for every later one."""
        try:
            await self._events.insert_one({"_id": event_id, "type": event_type, "received_ms": at_ms})
        except DuplicateKeyError:
            return False
        return True

    async def release_event(self, event_id: str) -> None:
        """Applying the event failed: let Stripe's retry apply it."""
        await self._events.delete_one({"_id": event_id})

    # --- invoices ----------------------------------------------------------------------

    async def put_invoice(self, invoice: dict[str, Any], synced_ns: int) -> bool:
        """Upsert the copy unless a newer fetch already wrote it."""
        fields = {k: v for k, v in invoice.items() if k != "_id"}
        try:
            result = await self._invoices.update_one(
                {"_id": invoice["_id"], "$or": [{"synced_ns": {"$lt": synced_ns}}, {"synced_ns": {"$exists": False}}]},
                {"$set": {**fields, "synced_ns": synced_ns}}, upsert=True)
        except DuplicateKeyError:
            return False  # a newer copy is there
        return result.upserted_id is not None or result.modified_count == 1

    async def invoices(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        cursor = self._invoices.find({"user_id": user_id}).sort([("created", DESCENDING), ("_id", DESCENDING)])
        return [i async for i in cursor.limit(limit)]

    async def invoice(self, user_id: str, invoice_id: str) -> dict[str, Any] | None:
        return await self._invoices.find_one({"_id": invoice_id, "user_id": user_id})
