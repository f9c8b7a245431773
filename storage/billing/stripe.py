"""What billing keeps of Stripe: the one customer per account, the prices each plan was
mirrored to (every version), the ids of the webhook events already applied, and a copy of
each invoice for the billing history.

Stripe stays the source of truth: records here are written from objects fetched from
Stripe, each stamped with the time its fetch started (`synced_ns`), and a write carrying an
older fetch never replaces a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from server.core.paging import PageResult
from storage.paging import paginate

INDEXES = {
    "billing_customers": [IndexModel([("customer_id", ASCENDING)], name="customer", unique=True)],
    "billing_prices": [IndexModel([("plan_id", ASCENDING), ("amount", ASCENDING), ("currency", ASCENDING),
                                   ("interval", ASCENDING)], name="version")],
    # The event id is the document id: the unique index that makes each event apply once.
    "billing_events": [IndexModel([("received_ms", DESCENDING)], name="received")],
    "billing_invoices": [IndexModel([("user_id", ASCENDING), ("created", DESCENDING)], name="history")],
}


@dataclass(frozen=True)
class Claim:
    """What a delivery found: the event is now its to apply, was applied already, or is
    being applied under someone else's lease (until `lease_until_ms`)."""

    outcome: Literal["claimed", "applied", "in_progress"]
    attempts: int
    lease_until_ms: int


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

    async def claim_event(self, event_id: str, event_type: str, at_ms: int, lease_ms: int) -> Claim:
        """Claim the event for one apply that holds it for `lease_ms`. A later delivery finds
        it applied (a duplicate) or still being applied (come back later), unless the claim
        was released after a failure or its lease ran out (the applier died): then it is
        claimed again, with one more attempt counted."""
        lease = {"state": "applying", "lease_until_ms": at_ms + lease_ms}
        try:
            await self._events.insert_one({"_id": event_id, "type": event_type, "received_ms": at_ms,
                                           "attempts": 1, **lease})
            return Claim("claimed", 1, at_ms + lease_ms)
        except DuplicateKeyError:
            pass
        retaken = await self._events.find_one_and_update(
            {"_id": event_id, "$or": [{"state": "released"},
                                      {"state": "applying", "lease_until_ms": {"$lte": at_ms}}]},
            {"$set": lease, "$inc": {"attempts": 1}}, return_document=ReturnDocument.AFTER)
        if retaken is not None:
            return Claim("claimed", int(retaken["attempts"]), at_ms + lease_ms)
        doc = await self._events.find_one({"_id": event_id}) or {}
        if doc.get("state") == "applying":
            return Claim("in_progress", int(doc.get("attempts") or 1), int(doc["lease_until_ms"]))
        return Claim("applied", int(doc.get("attempts") or 1), 0)  # also claims kept before leases existed

    async def finish_event(self, event_id: str, claim: Claim, at_ms: int) -> bool:
        """The apply under `claim` is done; False if the lease had run out and another
        process claimed the event meanwhile (it applies the same latest state again)."""
        result = await self._events.update_one(
            {"_id": event_id, "state": "applying", "attempts": claim.attempts},
            {"$set": {"state": "applied", "applied_ms": at_ms}, "$unset": {"lease_until_ms": "", "notices": ""}})
        return result.modified_count == 1

    async def hold_notices(self, event_id: str, claim: Claim, key: str, entry: dict[str, Any]) -> None:
        """Keep the messages a change is about to cause on the event, before the change is
        written, so an attempt after a crash can still send them."""
        await self._events.update_one({"_id": event_id, "state": "applying", "attempts": claim.attempts},
                                      {"$set": {f"notices.{key}": entry}})

    async def drop_notices(self, event_id: str, claim: Claim, key: str) -> None:
        await self._events.update_one({"_id": event_id, "attempts": claim.attempts},
                                      {"$unset": {f"notices.{key}": ""}})

    async def release_event(self, event_id: str, claim: Claim) -> None:
        """Applying the event failed: Stripe's retry claims it again."""
        await self._events.update_one({"_id": event_id, "state": "applying", "attempts": claim.attempts},
                                      {"$set": {"state": "released"}, "$unset": {"lease_until_ms": ""}})

    async def event(self, event_id: str) -> dict[str, Any] | None:
        return await self._events.find_one({"_id": event_id})

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

    async def claim_receipt(self, invoice_id: str, event_id: str) -> bool:
        """True once per invoice: whichever event first tells of its payment sends the receipt."""
        result = await self._invoices.update_one({"_id": invoice_id, "receipt_event": {"$exists": False}},
                                                 {"$set": {"receipt_event": event_id}})
        return result.modified_count == 1

    async def receipt_event_of(self, invoice_id: str) -> str | None:
        doc = await self._invoices.find_one({"_id": invoice_id}, {"receipt_event": 1})
        return (doc or {}).get("receipt_event")

    async def invoices(self, user_id: str, limit: int, cursor: str | None) -> PageResult:
        """The account's invoices, newest first."""
        return await paginate(self._invoices, {"user_id": user_id}, sort_key="created", limit=limit, cursor=cursor)

    async def invoice(self, user_id: str, invoice_id: str) -> dict[str, Any] | None:
        return await self._invoices.find_one({"_id": invoice_id, "user_id": user_id})
