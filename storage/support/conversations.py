"""Support conversations and their messages (ciphertext only).

Messages are inserted in batches: `(conversation_id, seq)` and `(conversation_id, client_id)`
are unique, so two writers can never store the same number, and a retried send is stored
once. The latest number of a conversation is read from its messages (the newest by the
`by_seq` index), never kept in a second document that every send would have to update.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000

INDEXES = {
    "support_conversations": [
        IndexModel([("viewer_id", ASCENDING), ("updated_ms", DESCENDING)], name="by_viewer"),
        IndexModel([("assignee_id", ASCENDING), ("status", ASCENDING)], name="by_assignee"),
        IndexModel([("queued", ASCENDING), ("created_ms", ASCENDING)], name="queue"),
    ],
    "support_messages": [
        IndexModel([("conversation_id", ASCENDING), ("seq", ASCENDING)], unique=True, name="by_seq"),
        IndexModel([("conversation_id", ASCENDING), ("client_id", ASCENDING)], unique=True, name="once_per_client"),
    ],
}


class ConversationRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._conversations = db.support_conversations
        self._messages = db.support_messages

    async def create(self, doc: dict[str, Any]) -> dict[str, Any]:
        await self._conversations.insert_one(doc)
        return doc

    async def get(self, conversation_id: str) -> dict[str, Any] | None:
        return await self._conversations.find_one({"_id": conversation_id})

    async def update(self, conversation_id: str, changes: dict[str, Any],
                     expect: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Apply `changes` only if the conversation still matches `expect` (None when not)."""
        return await self._conversations.find_one_and_update(
            {"_id": conversation_id, **(expect or {})}, {"$set": changes}, return_document=ReturnDocument.AFTER)

    async def of_viewer(self, viewer_id: str, limit: int = 100) -> list[dict[str, Any]]:
        cursor = self._conversations.find({"viewer_id": {"$eq": viewer_id}}).sort("updated_ms", DESCENDING)
        return [d async for d in cursor.limit(limit)]

    async def assigned_to(self, agent_id: str, limit: int = 200) -> list[dict[str, Any]]:
        cursor = self._conversations.find({"assignee_id": {"$eq": agent_id}, "status": {"$ne": "resolved"}})
        return [d async for d in cursor.limit(limit)]

    async def open_count(self, agent_id: str) -> int:
        return await self._conversations.count_documents({"assignee_id": {"$eq": agent_id},
                                                          "status": {"$ne": "resolved"}})

    async def open_counts(self, agent_ids: list[str]) -> dict[str, int]:
        """Unresolved conversations per agent, in one query."""
        cursor = await self._conversations.aggregate([
            {"$match": {"assignee_id": {"$in": agent_ids}, "status": {"$ne": "resolved"}}},
            {"$group": {"_id": "$assignee_id", "n": {"$sum": 1}}}])
        return {row["_id"]: int(row["n"]) async for row in cursor}

    async def queue(self, limit: int = 200) -> list[dict[str, Any]]:
        cursor = self._conversations.find({"queued": {"$eq": True}}).sort("created_ms", ASCENDING)
        return [d async for d in cursor.limit(limit)]

    async def last_seq(self, conversation_id: str) -> int:
        newest = await self._messages.find_one({"conversation_id": {"$eq": conversation_id}},
                                                projection={"seq": 1}, sort=[("seq", DESCENDING)])
        return int(newest["seq"]) if newest else 0

    async def last_seqs(self, conversation_ids: list[str]) -> dict[str, int]:
        """The latest number of each conversation in one query (0 for those without messages)."""
        found = {c: 0 for c in conversation_ids}
        if conversation_ids:
            cursor = await self._messages.aggregate([
                {"$match": {"conversation_id": {"$in": conversation_ids}}},
                {"$sort": {"conversation_id": DESCENDING, "seq": DESCENDING}},  # by_seq backwards
                {"$group": {"_id": "$conversation_id", "seq": {"$first": "$seq"}}}])
            async for row in cursor:
                found[row["_id"]] = int(row["seq"])
        return found

    async def insert_messages(self, docs: list[dict[str, Any]]) -> set[int]:
        """One round trip for many messages; the positions a uniqueness stopped (the client id
        was stored before, or another writer took the number). Any other failure raises."""
        try:
            await self._messages.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            details = exc.details or {}
            if details.get("writeConcernErrors") or any(
                    e.get("code") != DUPLICATE_KEY for e in details.get("writeErrors", [])):
                raise
            return {int(e["index"]) for e in details["writeErrors"]}
        return set()

    async def message_by_client_id(self, conversation_id: str, client_id: str) -> dict[str, Any] | None:
        return await self._messages.find_one({"conversation_id": {"$eq": conversation_id},
                                              "client_id": {"$eq": client_id}})

    async def messages_after(self, conversation_id: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        cursor = self._messages.find({"conversation_id": {"$eq": conversation_id}, "seq": {"$gt": after_seq}})
        return [d async for d in cursor.sort("seq", ASCENDING).limit(limit)]

    async def mark_read(self, conversation_id: str, user_id: str, seq: int) -> None:
        await self._conversations.update_one({"_id": conversation_id},
                                             {"$max": {f"read.{user_id}": seq}})
