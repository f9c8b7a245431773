"""Viewing profiles of one account (up to five; `kids` profiles see only kids' titles)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.core import errors
from server.core.clock import iso
from storage.identity.profiles import ProfileRepository

MAX_PROFILES = 5


def profile_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "name": doc["name"],
        "kids": bool(doc.get("kids")),
        "avatar": doc.get("avatar"),
        "language": doc.get("language"),
        "created_at": iso(doc["created_at"]),
    }


class ProfileService:
    def __init__(self, repo: ProfileRepository) -> None:
        self._repo = repo

    async def list(self, user_id: str) -> list[dict[str, Any]]:
        return [profile_view(p) for p in await self._repo.for_user(user_id)]

    async def get(self, user_id: str, profile_id: str) -> dict[str, Any]:
        doc = await self._repo.get(user_id, profile_id)
        if doc is None:
            raise errors.NotFound("No such profile.", code="profile_not_found")
        return doc

    async def create(self, user_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        if await self._repo.count(user_id) >= MAX_PROFILES:
            raise errors.Conflict(f"An account can have at most {MAX_PROFILES} profiles.", code="too_many_profiles")
        doc = await self._repo.insert({**fields, "user_id": user_id, "created_at": dt.datetime.now(dt.UTC)})
        if await self._repo.count(user_id) > MAX_PROFILES:  # lost a race with a parallel create
            await self._repo.delete(user_id, str(doc["_id"]))
            raise errors.Conflict(f"An account can have at most {MAX_PROFILES} profiles.", code="too_many_profiles")
        return profile_view(doc)

    async def update(self, user_id: str, profile_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        doc = await self._repo.update(user_id, profile_id, changes) if changes else await self._repo.get(
            user_id, profile_id)
        if doc is None:
            raise errors.NotFound("No such profile.", code="profile_not_found")
        return profile_view(doc)

    async def delete(self, user_id: str, profile_id: str) -> None:
        await self.get(user_id, profile_id)
        if await self._repo.count(user_id) <= 1:
            raise errors.Conflict("An account keeps at least one profile.", code="last_profile")
        await self._repo.delete(user_id, profile_id)
