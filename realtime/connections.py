"""Which sockets this process holds, for whom, under which session.

It enforces the per-user connection cap, keeps each socket's principal and event budget,
and disconnects every local socket of a session when any process announces that the
session was revoked (logout, password reset, suspension, theft detection).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from realtime.events import TokenBucket
from server.core.permissions import Principal

log = logging.getLogger("nameless.realtime")


@dataclass
class Connection:
    principal: Principal
    bucket: TokenBucket
    ip: str = "-"


class ConnectionRegistry:
    def __init__(self, *, max_per_user: int, event_rate: float, event_burst: int) -> None:
        self.max_per_user = max_per_user
        self._event_rate = event_rate
        self._event_burst = event_burst
        self._by_sid: dict[tuple[str, str], Connection] = {}
        self._by_session: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._by_user: dict[str, set[tuple[str, str]]] = defaultdict(set)

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            return len(self._by_sid)
        return sum(1 for ns, _ in self._by_sid if ns == namespace)

    def by_namespace(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for ns, _ in self._by_sid:
            counts[ns] += 1
        return dict(counts)

    def users(self, namespace: str) -> list[str]:
        """The users with a socket on this namespace here."""
        return list({conn.principal.user_id for (ns, _), conn in self._by_sid.items() if ns == namespace})

    def user_count(self, user_id: str) -> int:
        return len(self._by_user.get(user_id, ()))

    def add(self, namespace: str, sid: str, principal: Principal, ip: str = "-") -> None:
        key = (namespace, sid)
        self._by_sid[key] = Connection(principal, TokenBucket(self._event_rate, self._event_burst), ip)
        self._by_session[principal.session_id].add(key)
        self._by_user[principal.user_id].add(key)

    def remove(self, namespace: str, sid: str) -> None:
        conn = self._by_sid.pop((namespace, sid), None)
        if conn is None:
            return
        for index, key in ((self._by_session, conn.principal.session_id), (self._by_user, conn.principal.user_id)):
            members = index.get(key)
            if members is not None:
                members.discard((namespace, sid))
                if not members:
                    del index[key]

    def principal(self, namespace: str, sid: str) -> Principal | None:
        conn = self._by_sid.get((namespace, sid))
        return conn.principal if conn else None

    def allow_event(self, namespace: str, sid: str) -> bool:
        conn = self._by_sid.get((namespace, sid))
        return conn is not None and conn.bucket.take()

    def of_sessions(self, session_ids: list[str]) -> list[tuple[str, str]]:
        return [key for s in session_ids for key in self._by_session.get(s, ())]

    def of_user(self, user_id: str) -> list[tuple[str, Connection]]:
        """(namespace, sid) and connection of every local socket of the user."""
        return [(key, self._by_sid[key]) for key in list(self._by_user.get(user_id, ())) if key in self._by_sid]

    def refresh(self, namespace: str, sid: str, principal: Principal) -> None:
        """The socket's principal after a re-check (same session, current roles)."""
        conn = self._by_sid.get((namespace, sid))
        if conn is not None and conn.principal.session_id == principal.session_id:
            conn.principal = principal

    async def on_revoked(
        self, message: dict[str, Any], disconnect: Callable[[str, str, dict[str, Any]], Awaitable[None]]
    ) -> None:
        """Pub/sub handler: end every local socket of the revoked sessions."""
        targets = self.of_sessions(list(message.get("session_ids", [])))
        for namespace, sid in targets:
            await disconnect(namespace, sid, {"reason": message.get("reason", "revoked")})
        if targets:
            log.info("sockets of revoked sessions closed", extra={"count": len(targets)})
