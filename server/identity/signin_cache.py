"""The session and account check of a socket connect, kept per process for a few seconds.

A mobile app reconnects its socket every time the radio wakes, and after a deploy every
app reconnects at once; each connect would otherwise verify the JWT and read the session
and the account. An entry is keyed by the access token itself, so a hit does neither.
Anything that narrows access is announced on pub/sub (sessions revoked, an account
suspended or its roles changed) and drops the entries of that session or user on every
process when it arrives; the process that makes the change drops them before it
announces. A message lost with a Redis outage is bounded by the entry lifetime.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server.core.permissions import Principal
from storage.state.pubsub import PubSub

MAX_ENTRIES = 100_000


@dataclass
class _Entry:
    principal: Principal
    expires: float  # monotonic
    last_used_ms: int


class SignInCache:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._by_session: dict[str, set[str]] = {}
        self._by_user: dict[str, set[str]] = {}
        # Bumped by every invalidation: a check that was reading the store while one
        # arrived must not store what it read.
        self.epoch = 0
        self._unsubscribe: list[Callable[[], Awaitable[None]]] = []

    async def start(self, pubsub: PubSub, revocations: str, access: str) -> None:
        self._unsubscribe = [await pubsub.subscribe(revocations, self._on_message),
                             await pubsub.subscribe(access, self._on_message)]

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            await unsubscribe()
        self._unsubscribe = []

    async def _on_message(self, message: dict[str, Any]) -> None:
        if not isinstance(message, dict):
            return
        self.forget(user_id=message.get("user_id"), session_ids=message.get("session_ids"))

    def get(self, token: str) -> _Entry | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(token)
            return None
        return entry

    def put(self, token: str, principal: Principal, last_used_ms: int, epoch: int, expires_in_s: float) -> None:
        """Keep the check's answer unless an invalidation arrived since `epoch` was read."""
        if self.ttl_s <= 0 or epoch != self.epoch or expires_in_s <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self.clear()
        self._entries[token] = _Entry(principal, self._clock() + min(self.ttl_s, expires_in_s), last_used_ms)
        self._by_session.setdefault(principal.session_id, set()).add(token)
        self._by_user.setdefault(principal.user_id, set()).add(token)

    def forget(self, *, user_id: Any = None, session_ids: Any = None) -> None:
        self.epoch += 1
        tokens: set[str] = set()
        if isinstance(user_id, str):
            tokens |= self._by_user.get(user_id, set())
        if isinstance(session_ids, list):
            for session_id in session_ids:
                if isinstance(session_id, str):
                    tokens |= self._by_session.get(session_id, set())
        for token in tokens:
            self._drop(token)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()
        self._by_session.clear()
        self._by_user.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, token: str) -> None:
        entry = self._entries.pop(token, None)
        if entry is None:
            return
        for index, key in ((self._by_session, entry.principal.session_id), (self._by_user, entry.principal.user_id)):
            members = index.get(key)
            if members is not None:
                members.discard(token)
                if not members:
                    del index[key]
