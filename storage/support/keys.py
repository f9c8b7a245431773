"""Public keys and sealed keys of the support chat: device public keys, the team's public
keys, and the team private key sealed to agent devices. Nothing here opens anything."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

INDEXES = {
    "device_keys": [IndexModel([("user_id", ASCENDING)], name="by_user")],
    "team_keys": [IndexModel([("number", DESCENDING)], name="newest")],
    "team_key_grants": [IndexModel([("agent_id", ASCENDING)], name="by_agent"),
                        IndexModel([("team_key_id", ASCENDING)], name="by_team_key")],
    "counters": [],
}


class KeyRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._devices = db.device_keys
        self._team = db.team_keys
        self._grants = db.team_key_grants
        self._counters = db.counters

    async def put_device(self, doc: dict[str, Any]) -> dict[str, Any]:
        await self._devices.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        return doc

    async def devices(self, user_id: str) -> list[dict[str, Any]]:
        return [d async for d in self._devices.find({"user_id": {"$eq": user_id}}).limit(100)]

    async def devices_of(self, user_ids: list[str]) -> list[dict[str, Any]]:
        return [d async for d in self._devices.find({"user_id": {"$in": user_ids}}).sort("created_ms", ASCENDING)
                .limit(1000)]

    async def device(self, key_id: str) -> dict[str, Any] | None:
        return await self._devices.find_one({"_id": key_id})

    async def drop_device(self, key_id: str) -> bool:
        """The device's public key and every team key sealed to it."""
        await self._grants.delete_many({"device_key_id": {"$eq": key_id}})
        return (await self._devices.delete_one({"_id": key_id})).deleted_count == 1

    async def next_team_number(self) -> int:
        doc = await self._counters.find_one_and_update({"_id": "team_keys"}, {"$inc": {"n": 1}}, upsert=True,
                                                       return_document=ReturnDocument.AFTER)
        return int(doc["n"])

    async def add_team_key(self, doc: dict[str, Any]) -> None:
        await self._team.update_many({"active": True}, {"$set": {"active": False}})
        await self._team.insert_one(doc)

    async def active_team_key(self) -> dict[str, Any] | None:
        return await self._team.find_one({"active": True}, sort=[("number", DESCENDING)])

    async def team_keys(self) -> list[dict[str, Any]]:
        return [k async for k in self._team.find({}).sort("number", DESCENDING).limit(100)]

    async def team_key(self, key_id: str) -> dict[str, Any] | None:
        return await self._team.find_one({"_id": key_id})

    async def put_grant(self, doc: dict[str, Any]) -> None:
        await self._grants.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def grants_for(self, agent_id: str) -> list[dict[str, Any]]:
        return [d async for d in self._grants.find({"agent_id": {"$eq": agent_id}}).limit(100)]

    async def granted(self, agent_ids: list[str]) -> list[dict[str, Any]]:
        """Which team keys are sealed to which devices of these people (not the sealed copies)."""
        cursor = self._grants.find({"agent_id": {"$in": agent_ids}}, {"team_key_id": 1, "device_key_id": 1})
        return [g async for g in cursor.limit(10_000)]

    async def drop_grants(self, agent_id: str) -> int:
        return (await self._grants.delete_many({"agent_id": agent_id})).deleted_count
