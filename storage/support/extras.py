"""What agents keep beside a conversation: private notes and canned responses (both sealed
to the team key), and attachments' metadata (the encrypted bytes sit in the object store)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

INDEXES = {
    "support_notes": [IndexModel([("conversation_id", ASCENDING), ("created_ms", ASCENDING)], name="by_conversation"),
                      IndexModel([("conversation_id", ASCENDING), ("client_id", ASCENDING)], unique=True,
                                 name="once_per_client")],
    "support_canned": [IndexModel([("created_ms", ASCENDING)], name="by_age")],
    "support_attachments": [IndexModel([("conversation_id", ASCENDING)], name="by_conversation")],
}


class ExtrasRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._notes = db.support_notes
        self._canned = db.support_canned
        self._attachments = db.support_attachments

    async def add_note(self, doc: dict[str, Any]) -> dict[str, Any]:
        try:
            await self._notes.insert_one(doc)
        except DuplicateKeyError:
            earlier = await self._notes.find_one({"conversation_id": {"$eq": doc["conversation_id"]},
                                                  "client_id": {"$eq": doc["client_id"]}})
            assert earlier is not None
            return earlier
        return doc

    async def notes(self, conversation_id: str) -> list[dict[str, Any]]:
        cursor = self._notes.find({"conversation_id": {"$eq": conversation_id}}).sort("created_ms", ASCENDING)
        return [d async for d in cursor.limit(500)]

    async def add_canned(self, doc: dict[str, Any]) -> dict[str, Any]:
        await self._canned.insert_one(doc)
        return doc

    async def canned(self) -> list[dict[str, Any]]:
        return [d async for d in self._canned.find({}).sort("created_ms", ASCENDING).limit(500)]

    async def delete_canned(self, canned_id: str) -> bool:
        return (await self._canned.delete_one({"_id": canned_id})).deleted_count == 1

    async def add_attachment(self, doc: dict[str, Any]) -> None:
        await self._attachments.insert_one(doc)

    async def attachment(self, conversation_id: str, attachment_id: str) -> dict[str, Any] | None:
        return await self._attachments.find_one({"_id": attachment_id, "conversation_id": {"$eq": conversation_id}})
