"""Whether a signed media link may still fetch files: its playback session must be live.

A media token proves who was given the link and for which asset version; it cannot say
whether the stream has since been stopped, the sign-in revoked, the account suspended or
the plan lost. Those answers come from the database, but a player fetches a segment every
few seconds, so each process keeps the answer per playback session for a short while and
drops it the moment any process announces a change on pub/sub (playback ended, sessions
revoked, entitlement changed). A change therefore takes effect within a pub/sub delivery
on every process, and anything nobody announces (a subscription running out, heartbeats
stopping) within `CACHE_TTL_S`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from server.billing.entitlements import ENTITLEMENTS_CHANNEL, EntitlementService
from server.core import errors
from server.core.clock import now, to_ms
from server.identity.sessions import REVOCATIONS_CHANNEL
from server.media.signing import MediaGrant
from storage.media.playback import PlaybackRepository
from storage.state.pubsub import PubSub

PLAYBACK_CHANNEL = "playback.ended"  # {"user_id", "session_id"}
SLOT_TTL_MS = 90_000  # a stream holds its slot, and its media link, this long after its last heartbeat
CACHE_TTL_S = 15.0
MAX_ENTRIES = 50_000


class SignIns(Protocol):
    async def in_force(self, user_id: str, session_id: str) -> bool: ...


@dataclass
class _Entry:
    user_id: str
    fetched: float
    max_height: int  # 0: refused
    code: str
    heartbeat_ms: int


class MediaAccess:
    def __init__(self, sessions: PlaybackRepository, sign_ins: SignIns, entitlements: EntitlementService,
                 pubsub: PubSub, clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions = sessions
        self._sign_ins = sign_ins
        self._entitlements = entitlements
        self._pubsub = pubsub
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._by_user: dict[str, set[str]] = {}
        self._generation: dict[str, int] = {}
        self._loading: dict[str, asyncio.Future[_Entry]] = {}
        self._unsubscribe: list[Callable[[], Awaitable[None]]] = []

    async def start(self) -> None:
        for channel in (PLAYBACK_CHANNEL, REVOCATIONS_CHANNEL, ENTITLEMENTS_CHANNEL):
            self._unsubscribe.append(await self._pubsub.subscribe(channel, self._on_change))

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            await unsubscribe()
        self._unsubscribe.clear()

    async def ended(self, user_id: str, session_id: str) -> None:
        """Tell every process that this stream's link no longer holds."""
        await self._pubsub.publish(PLAYBACK_CHANNEL, {"user_id": user_id, "session_id": session_id})

    async def _on_change(self, message: dict[str, Any]) -> None:
        if message.get("all"):
            self._generation = {user: gen + 1 for user, gen in self._generation.items()}
            self._entries.clear()
            self._by_user.clear()
            return
        user_id = str(message.get("user_id", ""))
        self._generation[user_id] = self._generation.get(user_id, 0) + 1
        for playback_id in self._by_user.pop(user_id, ()):
            self._entries.pop(playback_id, None)

    async def max_height(self, grant: MediaGrant) -> int:
        """The highest rendition this link may fetch now, or 403 when its stream is over."""
        entry = self._entries.get(grant.playback_id)
        at = self._clock()
        if entry is None or at - entry.fetched > CACHE_TTL_S or (
            entry.max_height and entry.heartbeat_ms + SLOT_TTL_MS < to_ms(now()) and at - entry.fetched > 1.0
        ):
            entry = await self._load(grant)
        if not entry.max_height or entry.user_id != grant.account_id:
            raise errors.Forbidden("This stream has ended; start playback again.", code=entry.code or "stream_ended")
        if entry.heartbeat_ms + SLOT_TTL_MS < to_ms(now()):
            raise errors.Forbidden("This stream has ended; start playback again.", code="stream_ended")
        return min(entry.max_height, grant.max_height)

    async def _load(self, grant: MediaGrant) -> _Entry:
        """One database read per stream per process at a time, however many segments wait."""
        pending = self._loading.get(grant.playback_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._loading[grant.playback_id] = future
        generation = self._generation.get(grant.account_id, 0)
        try:
            entry = await self._read(grant)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: only the waiters see it
            raise
        finally:
            self._loading.pop(grant.playback_id, None)
        future.set_result(entry)
        if self._generation.get(grant.account_id, 0) == generation:  # no change announced meanwhile
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
                self._by_user.clear()
            self._entries[grant.playback_id] = entry
            self._by_user.setdefault(entry.user_id, set()).add(grant.playback_id)
        return entry

    async def _read(self, grant: MediaGrant) -> _Entry:
        def refused(code: str, heartbeat_ms: int = 0) -> _Entry:
            return _Entry(grant.account_id, self._clock(), 0, code, heartbeat_ms)

        session = await self._sessions.get(grant.account_id, grant.playback_id)
        if session is None or session.get("ended"):
            return refused("stream_ended")
        auth_session = session.get("auth_session_id")
        if not auth_session or not await self._sign_ins.in_force(grant.account_id, auth_session):
            return refused("session_revoked")
        entitlement = await self._entitlements.current(grant.account_id)
        if entitlement is None:
            return refused("subscription_required")
        return _Entry(grant.account_id, self._clock(), entitlement.max_height, "", int(session["heartbeat_ms"]))
