"""The notification inbox (one document per notification), per-user preferences and
push devices."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from server.core.ids import new_id
from server.core.paging import PageResult
from storage.paging import paginate

# The single-field `user_id` index is the one nx-27017 can use (it ignores compound ones); an
# inbox read is then one user's rows, not a scan of every user's notifications. Equality is
# written `{"$eq": v}`, the form it compiles to a plain indexed comparison (docs/storage-compat.md).
INDEXES = {
    "notifications": [
        IndexModel([("user_id", ASCENDING)], name="user"),
        IndexModel([("user_id", ASCENDING), ("created_ms", DESCENDING)], name="inbox"),
        IndexModel([("user_id", ASCENDING), ("read", ASCENDING)], name="unread"),
        IndexModel([("delivery_pending", ASCENDING)], name="delivery_pending"),
    ],
    "notification_preferences": [],
    "devices": [IndexModel([("user_id", ASCENDING)], name="by_user")],
}


class NotificationRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._inbox = db.notifications
        self._prefs = db.notification_preferences
        self._devices = db.devices

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {"_id": new_id(), **doc}
        await self._inbox.insert_one(doc)
        return doc

    async def insert_many(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert those whose (derived) id is not stored yet; the ones inserted."""
        if not docs:
            return []
        have = {d["_id"] async for d in self._inbox.find({"_id": {"$in": [d["_id"] for d in docs]}}, {"_id": 1})}
        fresh = [d for d in docs if d["_id"] not in have]
        if fresh:
            try:
                await self._inbox.insert_many(fresh, ordered=True)
            except BulkWriteError as exc:  # a concurrent run stored some: keep what this one wrote
                return fresh[:int(exc.details.get("nInserted", 0))]
        return fresh

    async def delivery_queued(self, ids: list[str]) -> None:
        if ids:
            await self._inbox.update_many({"_id": {"$in": ids}}, {"$set": {"delivery_pending": False}})

    async def awaiting_delivery(self, before_ms: int, limit: int) -> list[dict[str, Any]]:
        """Stored notifications whose deliveries may not have reached the outbox (the
        process stopped between the two writes)."""
        cursor = self._inbox.find({"delivery_pending": True, "created_ms": {"$lt": before_ms}}).limit(limit)
        return [d async for d in cursor]

    async def page(self, user_id: str, unread_only: bool, limit: int, cursor: str | None) -> PageResult:
        query: dict[str, Any] = {"user_id": {"$eq": user_id}}
        if unread_only:
            query["read"] = False
        return await paginate(self._inbox, query, sort_key="created_ms", limit=limit, cursor=cursor)

    async def unread_count(self, user_id: str) -> int:
        return await self._inbox.count_documents({"user_id": {"$eq": user_id}, "read": False})

    async def mark_read(self, user_id: str, ids: list[str] | None, at_ms: int) -> int:
        query: dict[str, Any] = {"user_id": {"$eq": user_id}, "read": False}
        if ids is not None:
            query["_id"] = {"$in": ids}
        result = await self._inbox.update_many(query, {"$set": {"read": True, "read_ms": at_ms}})
        return result.modified_count

    async def preferences(self, user_id: str) -> dict[str, Any] | None:
        return await self._prefs.find_one({"_id": user_id})

    async def save_preferences(self, user_id: str, matrix: dict[str, dict[str, bool]]) -> None:
        # An embedded document written whole (docs/storage-compat.md, rule 3: flags inside it stay booleans).
        await self._prefs.update_one({"_id": user_id}, {"$set": {"matrix": matrix}}, upsert=True)

    async def device(self, push_token: str) -> dict[str, Any] | None:
        return await self._devices.find_one({"_id": push_token})

    async def put_device(self, device: dict[str, Any], previous: dict[str, Any] | None) -> bool:
        """Write the token's registration if it is still as the caller read it (`previous`,
        None for a token nobody holds); False when another registration won the race. The
        push token is the device's address at FCM/APNs: one owner at a time."""
        if previous is None:
            try:
                await self._devices.insert_one(device)
            except DuplicateKeyError:
                return False
            return True
        result = await self._devices.replace_one(
            {"_id": device["_id"], "user_id": previous["user_id"], "updated_ms": previous["updated_ms"]}, device
        )
        return result.matched_count == 1

    async def delete_device(self, user_id: str, push_token: str) -> bool:
        result = await self._devices.delete_one({"_id": push_token, "user_id": user_id})
        return result.deleted_count == 1

    async def devices_of(self, user_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        if user_ids:
            async for d in self._devices.find({"user_id": {"$in": user_ids}}):
                found.setdefault(d["user_id"], []).append(d)
        return found

    async def users_with_devices(self, user_ids: list[str]) -> set[str]:
        if not user_ids:
            return set()
        return {d["user_id"] async for d in self._devices.find({"user_id": {"$in": user_ids}}, {"user_id": 1})}

    async def forget_devices(self, push_tokens: list[str]) -> int:
        """Tokens FCM reports unregistered or invalid: whoever held them."""
        result = await self._devices.delete_many({"_id": {"$in": push_tokens}})
        return result.deleted_count

    async def unread_counts(self, user_ids: list[str]) -> dict[str, int]:
        if not user_ids:
            return {}
        pipeline = [{"$match": {"user_id": {"$in": user_ids}, "read": False}},
                    {"$group": {"_id": "$user_id", "n": {"$sum": 1}}}]
        return {d["_id"]: d["n"] async for d in await self._inbox.aggregate(pipeline)}

    async def preferences_of(self, user_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not user_ids:
            return {}
        return {d["_id"]: d async for d in self._prefs.find({"_id": {"$in": user_ids}})}

    async def save_quiet_hours(self, user_id: str, quiet: dict[str, Any] | None) -> None:
        await self._prefs.update_one({"_id": user_id}, {"$set": {"quiet_hours": quiet}}, upsert=True)

    async def devices(self, user_id: str) -> list[dict[str, Any]]:
        return [d async for d in self._devices.find({"user_id": user_id}).limit(50)]

    async def after(self, user_id: str, notification_id: str, limit: int) -> list[dict[str, Any]]:
        """The user's notifications newer than `notification_id`, oldest first (by time, then
        id); none when that id is not the user's. Two sargable queries, not one `$or`."""
        seen = await self._inbox.find_one({"_id": notification_id, "user_id": {"$eq": user_id}})
        if seen is None:
            return []
        order = [("created_ms", ASCENDING), ("_id", ASCENDING)]
        # The tie on created_ms is filtered here: nx-27017 reads the whole collection for a range on _id.
        same = [d async for d in self._inbox.find(
            {"user_id": {"$eq": user_id}, "created_ms": {"$eq": seen["created_ms"]}}
        ).sort(order) if d["_id"] > notification_id][:limit]
        later = [d async for d in self._inbox.find(
            {"user_id": {"$eq": user_id}, "created_ms": {"$gt": seen["created_ms"]}}
        ).sort(order).limit(limit)]
        return (same + later)[:limit]
