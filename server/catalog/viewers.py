"""Who is watching: the account and one of its profiles, resolved once per viewer request.

Viewer endpoints take an optional `profile_id`; it must belong to the signed-in account
(another account's profile is a 404, like any private object) and defaults to the
account's first profile. What the profile may see (its maturity ceiling) is decided here,
once, and carried along in the `Viewer`.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.catalog.maturity import ADULT_MAX_LEVEL, KIDS_MAX_LEVEL
from server.core import errors
from server.identity.profiles import ProfileService


@dataclass(frozen=True)
class Viewer:
    user_id: str
    profile_id: str
    kids: bool = False
    name: str = ""

    @property
    def max_level(self) -> int:
        return KIDS_MAX_LEVEL if self.kids else ADULT_MAX_LEVEL


VIEWERS_KEPT = 20_000


class ViewerResolver:
    def __init__(self, profiles: ProfileService) -> None:
        self._profiles = profiles
        # profile id -> (the cached profile document it was made from, the Viewer): reused
        # while the profiles cache hands out that same document, so a change makes a new one.
        self._viewers: dict[str, tuple[dict, Viewer]] = {}

    async def resolve(self, user_id: str, profile_id: str | None) -> Viewer:
        """From the account's cached profiles (server/identity/profiles.py): no read per request."""
        found = await self._profiles.of_user(user_id)
        if profile_id:
            doc = next((p for p in found if str(p["_id"]) == profile_id), None)
        else:
            doc = found[0] if found else None
        if doc is None:
            raise errors.NotFound("No such profile.", code="profile_not_found")
        profile_id = str(doc["_id"])
        kept = self._viewers.get(profile_id)
        if kept is not None and kept[0] is doc:
            return kept[1]
        viewer = Viewer(user_id=user_id, profile_id=profile_id, kids=bool(doc.get("kids")),
                        name=str(doc.get("name", "")))
        if len(self._viewers) >= VIEWERS_KEPT:
            self._viewers.clear()
        self._viewers[profile_id] = (doc, viewer)
        return viewer
