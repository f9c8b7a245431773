"""Outgoing deliveries (push to a user's devices, email to an address): one document per
delivery, claimed in batches under a lease, so a worker that dies leaves its claims to be
taken again once the lease runs out.

States: pending -> sending -> sent | dead | skipped | unconfirmed | cancelled; a failed
attempt goes back to pending with a later `due_ms`. Ids may be derived from what the
delivery is for (a release and an account), so queueing it twice is one document."""

from __future__ import annotations

import secrets
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from server.core.paging import PageResult
from storage.paging import paginate

# nx-27017 uses single-field indexes only; the claim queries use `$eq` so they can.
INDEXES = {
    "outbox": [
        IndexModel([("status", ASCENDING), ("created_at", ASCENDING)], name="pending"),
        IndexModel([("to", ASCENDING), ("created_at", DESCENDING)], name="by_recipient"),
        IndexModel([("due_ms", ASCENDING)], name="due"),
    ],
}

OPEN = ("pending", "sending")


class OutboxRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._outbox = db.outbox

    async def enqueue(self, doc: dict[str, Any]) -> bool:
        """False when a delivery with this id is already queued (a retried step)."""
        try:
            await self._outbox.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def enqueue_many(self, docs: list[dict[str, Any]]) -> int:
        """Insert the ones not queued yet; the count inserted."""
        if not docs:
            return 0
        have = {d["_id"] async for d in self._outbox.find({"_id": {"$in": [d["_id"] for d in docs]}}, {"_id": 1})}
        fresh = [d for d in docs if d["_id"] not in have]
        if not fresh:
            return 0
        try:
            await self._outbox.insert_many(fresh, ordered=False)
        except BulkWriteError as exc:  # another run queued some of them meanwhile
            return int(exc.details.get("nInserted", 0))
        return len(fresh)

    async def get(self, delivery_id: str) -> dict[str, Any] | None:
        return await self._outbox.find_one({"_id": delivery_id})

    async def claim(self, now_ms: int, lease_ms: int, limit: int) -> list[dict[str, Any]]:
        """Take up to `limit` deliveries: due pending ones, and sending ones whose worker's
        lease ran out (marked `recovered`: the worker may have sent them before dying)."""
        token = secrets.token_hex(8)
        expired = [d["_id"] async for d in self._outbox.find(
            {"status": {"$eq": "sending"}, "lease_until_ms": {"$lt": now_ms}}, {"_id": 1}).limit(limit)]
        if expired:
            await self._outbox.update_many(
                {"_id": {"$in": expired}, "status": "sending", "lease_until_ms": {"$lt": now_ms}},
                {"$set": {"claim": token, "lease_until_ms": now_ms + lease_ms, "recovered": True,
                          "updated_ms": now_ms}})
        room = limit - len(expired)
        if room > 0:
            due = [d["_id"] async for d in self._outbox.find(
                {"due_ms": {"$lte": now_ms}, "status": {"$eq": "pending"}}, {"_id": 1}).sort("due_ms", ASCENDING)
                .limit(room)]
            if due:
                await self._outbox.update_many(
                    {"_id": {"$in": due}, "status": "pending"},
                    {"$set": {"status": "sending", "claim": token, "lease_until_ms": now_ms + lease_ms,
                              "recovered": False, "updated_ms": now_ms}, "$inc": {"attempts": 1}})
            expired += due
        if not expired:
            return []
        return [d async for d in self._outbox.find({"_id": {"$in": expired}, "claim": token})]

    async def record(self, outcomes: list[tuple[dict[str, Any], dict[str, Any]]]) -> int:
        """Write each claimed delivery's outcome (`$set` fields), only while this claim still
        holds it; the count written."""
        if not outcomes:
            return 0
        ops = [UpdateOne({"_id": d["_id"], "claim": d["claim"], "status": "sending"}, {"$set": changes})
               for d, changes in outcomes]
        result = await self._outbox.bulk_write(ops, ordered=False)
        return result.modified_count

    async def extend(self, deliveries: list[dict[str, Any]], now_ms: int, lease_ms: int) -> None:
        await self._outbox.update_many(
            {"_id": {"$in": [d["_id"] for d in deliveries]}, "claim": deliveries[0]["claim"], "status": "sending"},
            {"$set": {"lease_until_ms": now_ms + lease_ms}})

    async def add_done_tokens(self, delivery: dict[str, Any], tokens: list[str]) -> None:
        """Devices a push reached, written before the outcome so a retry skips them."""
        await self._outbox.update_one({"_id": delivery["_id"], "claim": delivery["claim"]},
                                      {"$addToSet": {"done_tokens": {"$each": tokens}}})

    async def requeue(self, delivery_id: str, now_ms: int) -> bool:
        """Staff retry of a dead or unconfirmed delivery: the devices whose push was not
        confirmed are tried again, those that confirmed are not."""
        doc = await self._outbox.find_one({"_id": delivery_id, "status": {"$in": ["dead", "unconfirmed"]}})
        if doc is None:
            return False
        unsure = set(doc.get("unconfirmed_tokens") or [])
        done = [t for t in doc.get("done_tokens") or [] if t not in unsure]
        result = await self._outbox.update_one(
            {"_id": delivery_id, "status": doc["status"], "updated_ms": doc.get("updated_ms")},
            {"$set": {"status": "pending", "due_ms": now_ms, "attempts": 0, "updated_ms": now_ms, "error": None,
                      "done_tokens": done, "unconfirmed_tokens": [], "recovered": False}})
        return result.modified_count == 1

    async def counts(self) -> dict[str, int]:
        pipeline = [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        return {d["_id"]: d["n"] async for d in await self._outbox.aggregate(pipeline)}

    async def drop_field(self, name: str) -> int:
        result = await self._outbox.update_many({name: {"$exists": True}}, {"$unset": {name: ""}})
        return result.modified_count

    async def page(self, to: str | None, status: str | None, limit: int, cursor: str | None) -> PageResult:
        query: dict[str, Any] = {}
        if to:
            query["to"] = to
        if status:
            query["status"] = status
        return await paginate(self._outbox, query, sort_key="created_at", limit=limit, cursor=cursor)
