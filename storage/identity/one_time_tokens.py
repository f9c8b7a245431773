"""Single-use, expiring tokens (email verification, password reset), stored as hashes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from server.core.clock import to_ms

INDEXES = {
    "one_time_tokens": [
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl"),
        IndexModel([("user_id", ASCENDING), ("purpose", ASCENDING)], name="user_purpose"),
    ],
}


class OneTimeTokenRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._tokens = db.one_time_tokens

    async def create(self, token_hash: str, user_id: str, purpose: str, expires_at: dt.datetime) -> None:
        await self._tokens.insert_one(
            {"_id": token_hash, "user_id": user_id, "purpose": purpose, "expires_at": expires_at, "used_ms": None}
        )

    async def consume(self, token_hash: str, purpose: str, at: dt.datetime) -> dict[str, Any] | None:
        """The token's record if it was valid and unused; it is used from now on."""
        return await self._tokens.find_one_and_update(
            {"_id": token_hash, "purpose": purpose, "used_ms": None, "expires_at": {"$gt": at}},
            {"$set": {"used_ms": to_ms(at)}},
            return_document=ReturnDocument.AFTER,
        )

    async def peek(self, token_hash: str, purpose: str, at: dt.datetime) -> dict[str, Any] | None:
        return await self._tokens.find_one(
            {"_id": token_hash, "purpose": purpose, "used_ms": None, "expires_at": {"$gt": at}}
        )

    async def invalidate(self, user_id: str, purpose: str, at: dt.datetime) -> None:
        await self._tokens.update_many(
            {"user_id": user_id, "purpose": purpose, "used_ms": None}, {"$set": {"used_ms": to_ms(at)}}
        )
