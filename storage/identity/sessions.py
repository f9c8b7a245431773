"""Signed-in sessions and their refresh tokens (stored only as SHA-256 hashes)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from server.core.clock import to_ms

INDEXES = {
    "sessions": [
        IndexModel([("user_id", ASCENDING), ("last_used_ms", DESCENDING)], name="user_recent"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl"),
    ],
    "refresh_tokens": [
        IndexModel([("session_id", ASCENDING)], name="session"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl"),
    ],
}


class SessionRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._sessions = db.sessions
        self._tokens = db.refresh_tokens

    async def create(self, doc: dict[str, Any]) -> None:
        await self._sessions.insert_one(doc)

    async def get(self, session_id: str) -> dict[str, Any] | None:
        return await self._sessions.find_one({"_id": session_id})

    async def get_many(self, session_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {doc["_id"]: doc async for doc in self._sessions.find({"_id": {"$in": session_ids}})}

    async def list_active(self, user_id: str) -> list[dict[str, Any]]:
        cursor = self._sessions.find({"user_id": user_id, "revoked_ms": None}).sort("last_used_ms", DESCENDING)
        return [doc async for doc in cursor.limit(200)]

    async def touch(self, session_id: str, ip: str, at: dt.datetime) -> None:
        await self._sessions.update_one({"_id": session_id}, {"$set": {"last_used_ms": to_ms(at), "ip": ip}})

    async def revoke(self, session_id: str, reason: str, at: dt.datetime, *, user_id: str | None = None) -> bool:
        query: dict[str, Any] = {"_id": session_id, "revoked_ms": None}
        if user_id is not None:
            query["user_id"] = user_id
        result = await self._sessions.update_one(query, {"$set": {"revoked_ms": to_ms(at), "revoked_reason": reason}})
        return result.modified_count == 1

    async def revoke_all(self, user_id: str, reason: str, at: dt.datetime) -> list[str]:
        ids = [doc["_id"] async for doc in self._sessions.find({"user_id": user_id, "revoked_ms": None}, {"_id": 1})]
        if ids:
            await self._sessions.update_many(
                {"_id": {"$in": ids}, "revoked_ms": None}, {"$set": {"revoked_ms": to_ms(at), "revoked_reason": reason}}
            )
        return ids

    async def add_refresh(self, token_hash: str, session_id: str, expires_at: dt.datetime) -> None:
        await self._tokens.insert_one(
            {"_id": token_hash, "session_id": session_id, "used_ms": None, "expires_at": expires_at}
        )

    async def consume_refresh(self, token_hash: str, at: dt.datetime) -> tuple[str, dict[str, Any] | None]:
        """Mark a refresh token used, atomically. Returns ("ok", doc), ("reused", doc) when it
        was already rotated (theft signal), or ("unknown", None)."""
        doc = await self._tokens.find_one_and_update(
            {"_id": token_hash, "used_ms": None},
            {"$set": {"used_ms": to_ms(at)}},
            return_document=ReturnDocument.BEFORE,
        )
        if doc is not None:
            return ("ok", doc) if doc["expires_at"] > at else ("unknown", None)
        existing = await self._tokens.find_one({"_id": token_hash})
        return ("reused", existing) if existing is not None else ("unknown", None)
