"""Viewing profiles of one account (up to five; `kids` profiles see only kids' titles).

Every viewer request resolves its profile (`server/catalog/viewers.py`), so each process
keeps an account's profiles for `ttl_s` and drops them the moment a profile of that account
changes: here before the change is answered, and on every other process through pub/sub
(`profiles.changed`). A kids flag set on one process therefore holds everywhere within a
pub/sub delivery, and within `ttl_s` if the message is lost.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from server.core import errors
from server.core.clock import iso
from server.core.local_cache import LocalCache
from storage.identity.profiles import ProfileRepository
from storage.state.pubsub import PubSub

MAX_PROFILES = 5
PROFILES_CHANNEL = "profiles.changed"  # {"user_id"}
CACHE_TTL_S = 10.0
MAX_CACHED = 50_000


def _changed_user(message: dict[str, Any]) -> list[str]:
    user_id = message.get("user_id")
    return [user_id] if isinstance(user_id, str) else []


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
    def __init__(self, repo: ProfileRepository, pubsub: PubSub, ttl_s: float = CACHE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._repo = repo
        self._pubsub = pubsub
        self._cache: LocalCache[list[dict[str, Any]]] = LocalCache(ttl_s, MAX_CACHED, clock)

    async def start(self) -> None:
        await self._cache.listen(self._pubsub, PROFILES_CHANNEL, _changed_user)

    async def stop(self) -> None:
        await self._cache.stop()

    async def of_user(self, user_id: str) -> list[dict[str, Any]]:
        """The account's profile documents, oldest first, from this process's cache."""
        return await self._cache.load(user_id, lambda: self._repo.for_user(user_id))

    async def _changed(self, user_id: str) -> None:
        self._cache.forget(user_id)
        await self._pubsub.publish(PROFILES_CHANNEL, {"user_id": user_id})

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
        await self._changed(user_id)
        return profile_view(doc)

    async def update(self, user_id: str, profile_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        doc = await self._repo.update(user_id, profile_id, changes) if changes else await self._repo.get(
            user_id, profile_id)
        if doc is None:
            raise errors.NotFound("No such profile.", code="profile_not_found")
        if changes:
            await self._changed(user_id)
        return profile_view(doc)

    async def delete(self, user_id: str, profile_id: str) -> None:
        await self.get(user_id, profile_id)
        if await self._repo.count(user_id) <= 1:
            raise errors.Conflict("An account keeps at least one profile.", code="last_profile")
        await self._repo.delete(user_id, profile_id)
        await self._changed(user_id)
