"""Starting, keeping and stopping playback; rendering signed playlists.

Start checks, in order: the profile may see the title (catalog rules), the account is
entitled (plan, or a complimentary grant), the title has a ready asset, and a stream slot
is free (slots are playback sessions whose heartbeats are recent). The manifest URL carries
a token for the asset version in its path (`/media/<token>/assets/<id>/v<n>/master.m3u8`);
every URI inside the playlists is relative, so it inherits the token, and no rendition
above the plan's height is listed or served: neither its variant nor its I-frame variant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from google.api_core.exceptions import NotFound

from server.billing.entitlements import EntitlementService
from server.catalog.browse import CatalogService
from server.catalog.history import HistoryService
from server.catalog.viewers import Viewer, ViewerResolver
from server.core import errors
from server.core.clock import iso, now, to_ms
from server.core.turns import Turns
from server.media.access import SLOT_TTL_MS, MediaAccess
from server.media.signing import BadToken, MediaGrant, MediaSigner
from server.media.transcode import Rendition, master_playlist
from storage.media.assets import MediaRepository
from storage.media.playback import PlaybackRepository
from storage.objects.store import BadKey, MediaStore
from storage.state.ephemeral import EphemeralStore

log = logging.getLogger("nameless.media")

# (asset id, version): index an asset version transcoded before I-frame playlists existed
IndexLater = Callable[[str, int], Awaitable[Any]]

# A link lives as long as the title takes to watch with room for pauses, never less than
# TOKEN_MIN_S; within that window it holds only while its playback session is live.
TOKEN_MIN_S = 30 * 60
TOKEN_MAX_S = 6 * 3600
SEGMENT_URL_TTL = dt.timedelta(minutes=2)
# Every file a published asset version has, and nothing else: a key is authorised only in
# this one spelling, so `.`, empty, encoded or doubled segments never reach the plan check.
_MEDIA_KEY = re.compile(
    r"^assets/(?P<asset>[0-9a-f]{24})/v(?P<version>[1-9][0-9]{0,5})/"
    r"(?:master\.m3u8|poster\.jpg|(?P<height>[1-9][0-9]{2,3})p/(?:index\.m3u8|iframes\.m3u8|seg_[0-9]{5,6}\.ts))$"
)


def token_lifetime(duration_s: float) -> int:
    return int(min(TOKEN_MAX_S, max(TOKEN_MIN_S, duration_s * 1.5 + 15 * 60)))


class PlaybackService:
    def __init__(self, viewers: ViewerResolver, catalog: CatalogService, history: HistoryService,
                 entitlements: EntitlementService, media: MediaRepository, sessions: PlaybackRepository,
                 signer: MediaSigner, ephemeral: EphemeralStore, store: MediaStore, access: MediaAccess,
                 index_later: IndexLater | None = None) -> None:
        self._store = store
        self._index_later = index_later
        self._index_asked: set[tuple[str, int]] = set()
        local = store.local_path("probe")
        self.local_media = local is not None
        self.local_root = str(local.parent) if local is not None else None
        self._published: dict[tuple[str, int], list[Rendition]] = {}
        self._playlists: dict[str, bytes] = {}
        self._viewers = viewers
        self._catalog = catalog
        self._history = history
        self._entitlements = entitlements
        self._media = media
        self._sessions = sessions
        self._signer = signer
        self._ephemeral = ephemeral
        self._access = access
        self._starting = Turns()

    async def start(self, user_id: str, auth_session_id: str, content_id: str,
                    profile_id: str | None) -> dict[str, Any]:
        """The media link is bound to this playback session and to the sign-in that
        started it: ending either (or the plan) ends the link."""
        viewer = await self._viewers.resolve(user_id, profile_id)
        title, _ = await self._catalog.resolve_content(content_id)
        await self._catalog.visible_title(viewer, str(title["_id"]))
        entitlement = await self._entitlements.require(user_id)
        asset = await self._media.ready_for_content(content_id)
        if asset is None:
            raise errors.NotFound("This title cannot be played yet.", code="content_not_playable")
        session = await self._claim_slot(user_id, entitlement.streams, {
            "user_id": user_id, "profile_id": viewer.profile_id, "content_id": content_id,
            "asset_id": asset["_id"], "version": asset["version"], "position": 0.0, "state": "starting",
            "auth_session_id": auth_session_id,
        })
        return await self._link(user_id, session["_id"], asset, entitlement.max_height, viewer.profile_id, content_id)

    async def relink(self, user_id: str, auth_session_id: str, session_id: str) -> dict[str, Any] | None:
        """A fresh link for a playback session that is still live and was started by this
        sign-in (a watch-party member taking their seat back keeps their stream slot);
        None when it is not, and a new start is needed."""
        session = await self._sessions.get(user_id, session_id)
        if (session is None or session["ended"] or session.get("auth_session_id") != auth_session_id
                or session["heartbeat_ms"] < to_ms(now()) - SLOT_TTL_MS):
            return None
        entitlement = await self._entitlements.require(user_id)
        asset = await self._media.asset(session["asset_id"])
        if asset is None or asset["status"] != "ready":
            return None
        return await self._link(user_id, session_id, asset, entitlement.max_height, session["profile_id"],
                                session["content_id"])

    async def _link(self, user_id: str, session_id: str, asset: dict[str, Any], max_height: int,
                    profile_id: str, content_id: str) -> dict[str, Any]:
        expires = int(time.time()) + token_lifetime(float(asset.get("duration") or 0))
        grant = MediaGrant(user_id, session_id, f"assets/{asset['_id']}/v{asset['version']}/", max_height, expires)
        return {
            "session_id": session_id,
            "manifest_path": f"/media/{self._signer.sign(grant)}/{grant.prefix}master.m3u8",
            "expires_at": iso(expires * 1000),
            "resume_position": await self._history.resume_position(profile_id, content_id),
            "max_height": max_height,
        }

    async def _claim_slot(self, user_id: str, streams: int, doc: dict[str, Any]) -> dict[str, Any]:
        """Count and create under a short per-account lock, so two devices starting at
        once cannot both take the last slot. Starts of one account on this process queue
        in process first (a viewer joining several watch parties at once), so only starts
        on other processes ever wait on the shared lock."""
        async with self._starting.of(user_id):
            return await self._claim_slot_locked(user_id, streams, doc)

    async def _claim_slot_locked(self, user_id: str, streams: int, doc: dict[str, Any]) -> dict[str, Any]:
        lock = f"playback-start:{user_id}"
        for _ in range(50):
            if await self._ephemeral.set(lock, "1", 5, only_new=True):
                break
            await asyncio.sleep(0.05)
        else:
            raise errors.Conflict("Another stream is starting; try again.", code="start_in_progress")
        try:
            at = to_ms(now())
            active = await self._sessions.active(user_id, at - SLOT_TTL_MS)
            if len(active) >= streams:
                raise errors.RateLimited(
                    SLOT_TTL_MS // 1000, f"Your plan allows {streams} stream(s) at a time.", code="too_many_streams"
                )
            return await self._sessions.create({**doc, "ended": False, "created_ms": at, "heartbeat_ms": at})
        finally:
            await self._ephemeral.delete(lock)

    async def playable(self, content_id: str) -> bool:
        return await self._media.ready_for_content(content_id) is not None

    async def heartbeat(self, user_id: str, session_id: str, position: float, state: str) -> dict[str, Any]:
        session = await self._sessions.get(user_id, session_id)
        if session is None:
            raise errors.NotFound("No such playback session.", code="playback_session_not_found")
        if session["ended"]:
            raise errors.Conflict("This playback session has ended.", code="playback_session_ended")
        await self._sessions.beat(user_id, session_id, to_ms(now()), position, state)
        asset = await self._media.asset(session["asset_id"])
        duration = float(asset.get("duration") or 0) if asset else 0.0
        progress = await self._history.record_progress(
            Viewer(user_id=user_id, profile_id=session["profile_id"]), session["content_id"], position, duration
        )
        if state == "ended" and await self._sessions.end(user_id, session_id, to_ms(now())):
            await self._access.ended(user_id, session_id)
        return {"ok": True, "completed": bool(progress.get("completed"))}

    async def stop(self, user_id: str, session_id: str) -> None:
        if await self._sessions.end(user_id, session_id, to_ms(now())):
            await self._access.ended(user_id, session_id)
        elif await self._sessions.get(user_id, session_id) is None:
            raise errors.NotFound("No such playback session.", code="playback_session_not_found")

    # --- signed media ---------------------------------------------------------------

    async def authorize(self, key: str, token: str | None) -> MediaGrant:
        """The grant for this file, or 403: bad/expired/missing token, other path, stream
        over, above plan (404 for a key that cannot be one of ours)."""
        match = _MEDIA_KEY.match(key)
        if match is None:
            raise errors.NotFound("No such media.", code="media_not_found")
        try:
            grant = self._signer.verify(token)
        except BadToken:
            raise errors.Forbidden("This media link is not valid.", code="media_token_invalid") from None
        if not grant.covers(key):
            raise errors.Forbidden("This media link does not cover this file.", code="media_token_invalid")
        max_height = await self._access.max_height(grant)
        height = match.group("height")
        if height is not None and int(height) > max_height:
            raise errors.Forbidden("Your plan does not include this quality.", code="quality_not_in_plan")
        return MediaGrant(grant.account_id, grant.playback_id, grant.prefix, max_height, grant.expires)

    async def master(self, key: str, grant: MediaGrant) -> str:
        """The renditions the plan allows. Their URIs are relative, so they inherit the token
        in the path: one signature covers every playlist and segment of this playback."""
        match = _MEDIA_KEY.match(key)
        if match is None:
            raise errors.NotFound("No such media.", code="media_not_found")
        asset_id, version = match.group("asset"), int(match.group("version"))
        renditions = await self._renditions(asset_id, version)
        allowed = [r for r in renditions if r.height <= grant.max_height]
        if not allowed:
            raise errors.Forbidden("Your plan does not include any quality of this title.", code="quality_not_in_plan")
        if not all(r.indexed for r in renditions):
            await self._ask_index(asset_id, version)
        return master_playlist(allowed, lambda name: f"{name}/index.m3u8")

    async def _renditions(self, asset_id: str, version: int) -> list[Rendition]:
        """An asset version's renditions never change once published and indexed: cached.
        A version still to be indexed is read again, so its I-frame variants appear once
        the index job has run, on every process."""
        cached = self._published.get((asset_id, version))
        if cached is None:
            asset = await self._media.asset(asset_id)
            if asset is None or asset["status"] != "ready" or int(asset["version"]) != version:
                raise errors.NotFound("No such media.", code="media_not_found")
            renditions = [Rendition(**r) for r in asset["renditions"]]
            if not all(r.indexed for r in renditions):
                return renditions
            if len(self._published) >= 10_000:
                self._published.clear()
            cached = self._published[(asset_id, version)] = renditions
        return cached

    async def _ask_index(self, asset_id: str, version: int) -> None:
        """Once per process and asset version (the job itself skips a version already indexed)."""
        if self._index_later is None or (asset_id, version) in self._index_asked:
            return
        if len(self._index_asked) >= 10_000:
            self._index_asked.clear()
        self._index_asked.add((asset_id, version))
        try:
            await self._index_later(asset_id, version)
        except Exception:  # the master is served without I-frame variants; a later fetch asks again
            self._index_asked.discard((asset_id, version))
            log.warning("could not queue the index of an asset", extra={"asset": asset_id}, exc_info=True)

    async def stored_playlist(self, key: str) -> bytes:
        """A rendition playlist kept in cloud storage (immutable per version, so cached)."""
        cached = self._playlists.get(key)
        if cached is None:
            try:
                cached = await self._store.read(key)
            except (OSError, BadKey, NotFound):
                raise errors.NotFound("No such media.", code="media_not_found") from None
            if len(self._playlists) >= 2_000:
                self._playlists.clear()
            self._playlists[key] = cached
        return cached

    def segment_url(self, key: str) -> str:
        """Cloud storage: a short-lived V4 signed URL for the one segment being fetched."""
        return self._store.signed_url(key, SEGMENT_URL_TTL)  # type: ignore[attr-defined]
