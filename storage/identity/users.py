"""Accounts: one document per user. Linked providers, sessions and profiles live in their
own collections, never in growing arrays here."""

from __future__ import annotations

import re
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from server.core.clock import now, to_ms
from server.core.ids import new_id, valid_id
from server.core.paging import PageResult
from storage.paging import paginate

INDEXES = {
    "users": [
        IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),
        IndexModel([("created_at", ASCENDING)], name="created_at"),
        IndexModel([("phone.number", ASCENDING)], name="phone"),
    ],
}


class EmailTaken(Exception):
    pass


class UserRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._users = db.users

    async def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {"_id": new_id(), **doc}
        try:
            await self._users.insert_one(doc)
        except DuplicateKeyError:
            raise EmailTaken(doc.get("email")) from None
        return doc

    async def get(self, user_id: str) -> dict[str, Any] | None:
        key = valid_id(user_id)
        return None if key is None else await self._users.find_one({"_id": key})

    async def get_many(self, user_ids: list[str]) -> dict[str, dict[str, Any]]:
        keys = [key for key in map(valid_id, user_ids) if key is not None]
        if not keys:
            return {}
        return {doc["_id"]: doc async for doc in self._users.find({"_id": {"$in": keys}})}

    async def emails(self, user_ids: list[str]) -> dict[str, str]:
        """Addresses of active accounts, for a batch of notifications."""
        if not user_ids:
            return {}
        cursor = self._users.find({"_id": {"$in": user_ids}}, {"email": 1, "status": 1})
        return {d["_id"]: d["email"] async for d in cursor if d.get("email") and d.get("status", "active") == "active"}

    async def by_email(self, email: str) -> dict[str, Any] | None:
        return await self._users.find_one({"email": email})

    async def by_phone(self, number: str) -> dict[str, Any] | None:
        return await self._users.find_one({"phone.number": number})

    async def update(self, user_id: str, changes: dict[str, Any], *, unset: tuple[str, ...] = ()) -> dict | None:
        key = valid_id(user_id)
        if key is None:
            return None
        update: dict[str, Any] = {"$set": {**changes, "updated_ms": to_ms(now())}}
        if unset:
            update["$unset"] = {name: "" for name in unset}
        return await self._users.find_one_and_update({"_id": key}, update, return_document=ReturnDocument.AFTER)

    async def pull_if_present(self, user_id: str, field: str, value: str) -> bool:
        """Remove `value` from the array `field`; True only for the caller that removed it."""
        key = valid_id(user_id)
        if key is None:
            return False
        result = await self._users.update_one({"_id": key, field: value}, {"$pull": {field: value}})
        return result.modified_count == 1

    async def search(self, text: str | None, role: str | None, limit: int, cursor: str | None) -> PageResult:
        query: dict[str, Any] = {}
        if text:
            query["email"] = {"$regex": "^" + re.escape(text.lower())}
        if role:
            query["roles"] = role
        return await paginate(self._users, query, sort_key="created_at", limit=limit, cursor=cursor)

    async def count_with_role(self, role: str) -> int:
        return await self._users.count_documents({"roles": role, "status": "active"})
