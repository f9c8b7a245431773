"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

MIN_LENGTH = 8
MAX_LENGTH = 128
MIN_SCORE = 2  # zxcvbn 0-4: below 2 is a very common or trivially guessable password


class PasswordHashing:
    """Hashing runs in a thread: argon2 is deliberately slow and must not block the loop."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy = self._hasher.hash("not-a-real-password-just-for-timing")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Always does one full verification, even with no stored hash (unknown email), so
        the answer takes the same time either way."""
        target = stored or self._dummy
        try:
            ok = await asyncio.to_thread(self._hasher.verify, target, password)
        except (VerificationError, InvalidHashError):
            return False
        return bool(ok) and stored is not None

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


def policy_problem(password: str, *, user_inputs: list[str]) -> str | None:
    """Why this password is refused, or None if it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    result = zxcvbn(password[:64], user_inputs=[u for u in user_inputs if u])
    if result["score"] < MIN_SCORE:
        hint = (result.get("feedback") or {}).get("warning") or "it is too common or easy to guess"
        return f"is too weak: {hint.rstrip('.')}"
    return None
