"""Login throttling that slows guessing without letting anyone lock a victim out for good.

Failures are counted per (account, client IP) and per IP. An attacker can block only the
pairs they use; the owner signing in from their own address is not affected, and a
password reset clears the account's counters. A per-account ceiling across all IPs slows a
distributed attack; it expires on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.core.errors import RateLimited
from storage.state.ephemeral import EphemeralStore


@dataclass(frozen=True)
class ThrottlePolicy:
    pair_failures: int = 5
    ip_failures: int = 30
    account_failures: int = 100
    window_seconds: int = 900


class LoginThrottle:
    def __init__(self, store: EphemeralStore, policy: ThrottlePolicy | None = None) -> None:
        self._store = store
        self.policy = policy or ThrottlePolicy()

    def _keys(self, account: str, ip: str) -> list[tuple[str, int]]:
        p = self.policy
        return [
            (f"login:pair:{account}:{ip}", p.pair_failures),
            (f"login:ip:{ip}", p.ip_failures),
            (f"login:acct:{account}", p.account_failures),
        ]

    async def check(self, account: str, ip: str) -> None:
        for key, limit in self._keys(account, ip):
            count = int(await self._store.get(key) or 0)
            if count >= limit:
                raise RateLimited(
                    self.policy.window_seconds,
                    "Too many failed sign-in attempts; try again later or reset your password.",
                    code="too_many_attempts",
                )

    async def failed(self, account: str, ip: str) -> None:
        for key, _ in self._keys(account, ip):
            await self._store.incr(key, self.policy.window_seconds)

    async def succeeded(self, account: str, ip: str) -> None:
        await self._store.delete(f"login:pair:{account}:{ip}")

    async def clear_account(self, account: str) -> None:
        await self._store.delete(f"login:acct:{account}")
