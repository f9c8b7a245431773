"""Support agents' presence and capacity: whether an agent takes new conversations, how
many at once, and until when some process last saw their console connected."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

INDEXES = {"support_agents": [IndexModel([("available", ASCENDING), ("online_until_ms", ASCENDING)],
                                         name="available")]}


class AgentRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._agents = db.support_agents

    async def set(self, agent_id: str, changes: dict[str, Any], default_capacity: int) -> dict[str, Any]:
        await self._agents.update_one({"_id": agent_id}, {"$setOnInsert": {"capacity": default_capacity,
                                                                          "available": True, "online_until_ms": 0}},
                                      upsert=True)
        return await self._agents.find_one_and_update({"_id": agent_id}, {"$set": changes},
                                                      return_document=ReturnDocument.AFTER)

    async def seen(self, agent_ids: list[str], until_ms: int) -> None:
        if agent_ids:
            await self._agents.update_many({"_id": {"$in": agent_ids}}, {"$set": {"online_until_ms": until_ms}})

    async def available(self, now_ms: int) -> list[dict[str, Any]]:
        cursor = self._agents.find({"available": {"$eq": True}, "online_until_ms": {"$gt": now_ms}})
        return [d async for d in cursor.limit(500)]

    async def of(self, agent_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self._agents.find({"_id": {"$in": agent_ids}})}
