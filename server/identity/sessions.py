"""Signed-in sessions: issuing token pairs, refresh rotation with theft detection,
revocation, and turning an access token into a Principal (the one auth check)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.core import errors
from server.core.batching import BatchedReads
from server.core.clock import iso, to_ms
from server.core.local_cache import LocalCache
from server.core.permissions import Principal
from server.identity.tokens import AccessClaims, AccessTokens, InvalidToken, hash_secret, new_secret
from storage.identity.sessions import SessionRepository
from storage.identity.users import UserRepository
from storage.state.pubsub import PubSub

REFRESH_TTL = dt.timedelta(days=30)
TOUCH_EVERY_MS = 60_000
REVOCATIONS_CHANNEL = "sessions.revoked"
# A user's roles or status changed: every process re-checks that user's open sockets and
# drops its cached sign-in checks.
ACCESS_CHANNEL = "users.access_changed"
# The staff pages' cookie: the signed id of a session of this kind (pages and sockets read it).
SESSION_COOKIE = "nameless_session"
SIGNED_IN_CACHED = 100_000  # access tokens whose check a process keeps (least recently used go first)


@dataclass(frozen=True)
class ClientInfo:
    ip: str
    user_agent: str = ""
    device: str = ""


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str

    def body(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


def session_view(doc: dict[str, Any], current: str) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "device": doc.get("device", ""),
        "user_agent": doc.get("user_agent", ""),
        "ip": doc.get("ip", ""),
        "method": doc.get("method", ""),
        "created_at": iso(doc["created_at"]),
        "last_used_at": iso(doc["last_used_ms"]),
        "current": doc["_id"] == current,
    }


class _SignedIn:
    """A kept sign-in check: who, and when the session was last marked used."""

    __slots__ = ("last_used_ms", "principal")

    def __init__(self, principal: Principal, last_used_ms: int) -> None:
        self.principal = principal
        self.last_used_ms = last_used_ms


def _signed_in_names(message: dict[str, Any]) -> list[tuple[str, str]]:
    """The cache tags a revocation or access message names: its user, its sessions."""
    names: list[tuple[str, str]] = []
    if isinstance(message.get("user_id"), str):
        names.append(("user", message["user_id"]))
    session_ids = message.get("session_ids")
    if isinstance(session_ids, list):
        names.extend(("session", s) for s in session_ids if isinstance(s, str))
    return names


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SessionService:
    def __init__(
        self,
        sessions: SessionRepository,
        users: UserRepository,
        tokens: AccessTokens,
        pubsub: PubSub,
        clock: Callable[[], dt.datetime] = utcnow,
        cache_ttl_s: float = 0.0,
    ) -> None:
        self._cache: LocalCache[_SignedIn] = LocalCache(cache_ttl_s, SIGNED_IN_CACHED)
        self._sessions = sessions
        self._users = users
        # the sign-in check's two reads, batched across callers (a reconnect storm, a burst)
        self._session_reads: BatchedReads[str] = BatchedReads(sessions.get_many)
        self._user_reads: BatchedReads[str] = BatchedReads(users.get_many)
        self._tokens = tokens
        self._pubsub = pubsub
        self._clock = clock

    async def start(self, user_id: str, client: ClientInfo, *, method: str) -> TokenPair:
        now = self._clock()
        session_id = secrets.token_urlsafe(16)
        await self._sessions.create(
            {
                "_id": session_id,
                "user_id": user_id,
                "method": method,
                "device": client.device[:120],
                "user_agent": client.user_agent[:300],
                "ip": client.ip,
                "created_at": now,
                "last_used_ms": to_ms(now),
                "revoked_ms": None,
                "expires_at": now + REFRESH_TTL,
            }
        )
        return await self._pair(user_id, session_id, now)

    async def _pair(self, user_id: str, session_id: str, now: dt.datetime) -> TokenPair:
        refresh = new_secret()
        await self._sessions.add_refresh(hash_secret(refresh), session_id, now + REFRESH_TTL)
        access = self._tokens.issue(user_id, session_id, now)
        return TokenPair(access, refresh, int(self._tokens.ttl.total_seconds()), session_id)

    async def refresh(self, refresh_token: str, client: ClientInfo) -> TokenPair:
        now = self._clock()
        state, record = await self._sessions.consume_refresh(hash_secret(refresh_token), now)
        if state == "reused" and record is not None:
            await self.revoke_session(record["session_id"], reason="refresh_token_reused")
            raise errors.Unauthorized(
                "This refresh token was already used; the session has been ended.", code="refresh_token_reused"
            )
        if state != "ok" or record is None:
            raise errors.Unauthorized("The refresh token is not valid.", code="invalid_refresh_token")
        session = await self._sessions.get(record["session_id"])
        if session is None or session["revoked_ms"] is not None:
            raise errors.Unauthorized("This session has ended.", code="session_revoked")
        user = await self._users.get(session["user_id"])
        if user is None or user.get("status") != "active":
            raise errors.Unauthorized("This account cannot sign in.", code="account_suspended")
        await self._sessions.touch(session["_id"], client.ip, now)
        return await self._pair(session["user_id"], session["_id"], now)

    async def logout(self, refresh_token: str) -> None:
        _, record = await self._sessions.consume_refresh(hash_secret(refresh_token), self._clock())
        if record is not None:
            await self.revoke_session(record["session_id"], reason="logout")

    async def start_cache(self) -> None:
        """Drop cached checks whenever any process announces a change of access."""
        await self._cache.listen(self._pubsub, REVOCATIONS_CHANNEL, _signed_in_names)
        await self._cache.listen(self._pubsub, ACCESS_CHANNEL, _signed_in_names)

    async def stop_cache(self) -> None:
        await self._cache.stop()

    async def authenticate(self, access_token: str, ip: str) -> Principal:
        """The one check behind every authenticated request and socket connection.

        Answered from this process's sign-in cache when the token was checked here within
        the cache lifetime (no JWT parse, no read); an entry never outlives its token, and a
        revocation, suspension or role change drops it at once on every process (pub/sub;
        the changing process first). The session's last use is written at most once per
        TOUCH_EVERY_MS either way."""
        found = self._cache.get(access_token)
        if found is None:
            claims = self._claims(access_token)
            expires_in = (claims.expires_at - self._clock()).total_seconds()
            found = await self._cache.load(
                access_token, lambda: self._signed_in(claims, ip),
                tags=(("user", claims.user_id), ("session", claims.session_id)), ttl_s=expires_in,
            )
            return found.principal
        now = self._clock()
        if to_ms(now) - found.last_used_ms > TOUCH_EVERY_MS:
            found.last_used_ms = to_ms(now)  # before the write: concurrent requests touch once
            await self._sessions.touch(found.principal.session_id, ip, now)
        return found.principal

    async def _signed_in(self, claims: AccessClaims, ip: str) -> _SignedIn:
        principal, last_used_ms = await self._check(claims.session_id, ip, expected_user=claims.user_id)
        return _SignedIn(principal, last_used_ms)

    def _claims(self, access_token: str) -> AccessClaims:
        try:
            return self._tokens.verify(access_token)
        except InvalidToken:
            raise errors.Unauthorized("The access token is invalid or expired.", code="invalid_token") from None

    async def authenticate_session(self, session_id: str, ip: str) -> Principal:
        """For the staff pages' cookie, which carries the (signed) session id itself."""
        return (await self._check(session_id, ip, expected_user=None))[0]

    async def _check(self, session_id: str, ip: str, *, expected_user: str | None) -> tuple[Principal, int]:
        """The principal, and when the session was last marked used."""
        session = await self._session_reads.get(session_id)
        if session is None or session["revoked_ms"] is not None or (
            expected_user is not None and session["user_id"] != expected_user
        ):
            raise errors.Unauthorized("This session has ended.", code="session_revoked")
        user = await self._user_reads.get(session["user_id"])
        if user is None:
            raise errors.Unauthorized("This session has ended.", code="session_revoked")
        if user.get("status") != "active":
            raise errors.Unauthorized("This account is suspended.", code="account_suspended")
        now = self._clock()
        last_used_ms = session["last_used_ms"]
        if to_ms(now) - last_used_ms > TOUCH_EVERY_MS:
            await self._sessions.touch(session["_id"], ip, now)
            last_used_ms = to_ms(now)
        return Principal(session["user_id"], session_id, frozenset(user.get("roles", ()))), last_used_ms

    async def in_force(self, user_id: str, session_id: str) -> bool:
        """Whether credentials derived from this session (media links) still hold: the
        session is not revoked and its account is active. Reads only; touches nothing."""
        session = await self._sessions.get(session_id)
        if session is None or session["revoked_ms"] is not None or session["user_id"] != user_id:
            return False
        user = await self._users.get(user_id)
        return user is not None and user.get("status") == "active"

    async def list(self, user_id: str, current_session_id: str) -> list[dict[str, Any]]:
        """The user's signed-in devices, the one asking marked `current`."""
        return [session_view(doc, current_session_id) for doc in await self._sessions.list_active(user_id)]

    async def revoke_own(self, user_id: str, session_id: str) -> None:
        """Another user's session id looks exactly like a missing one: 404."""
        if not await self._sessions.revoke(session_id, "revoked_by_user", self._clock(), user_id=user_id):
            raise errors.NotFound("No such session.", code="session_not_found")
        await self._announce(user_id, [session_id], "revoked_by_user")

    async def revoke_session(self, session_id: str, *, reason: str) -> None:
        session = await self._sessions.get(session_id)
        if session and await self._sessions.revoke(session_id, reason, self._clock()):
            await self._announce(session["user_id"], [session_id], reason)

    async def revoke_all(self, user_id: str, *, reason: str) -> int:
        ids = await self._sessions.revoke_all(user_id, reason, self._clock())
        if ids:
            await self._announce(user_id, ids, reason)
        return len(ids)

    async def access_changed(self, user_id: str) -> None:
        """A user's roles or status changed: checks cached anywhere are dropped, and every
        process re-checks the user's open sockets."""
        self._cache.forget(*_signed_in_names({"user_id": user_id}))
        await self._pubsub.publish(ACCESS_CHANNEL, {"user_id": user_id})

    async def _announce(self, user_id: str, session_ids: list[str], reason: str) -> None:
        """Other parts (the socket gateway) disconnect these sessions on every process."""
        self._cache.forget(*_signed_in_names({"user_id": user_id, "session_ids": session_ids}))
        await self._pubsub.publish(
            REVOCATIONS_CHANNEL, {"user_id": user_id, "session_ids": session_ids, "reason": reason}
        )
