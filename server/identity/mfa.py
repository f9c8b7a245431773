"""TOTP second factor with single-use recovery codes.

The TOTP secret is stored encrypted (Fernet, key derived from the server secret); recovery
codes are stored only as hashes and shown once. A code that was accepted cannot be
replayed within its time step.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from typing import Any

import pyotp
from cryptography.fernet import Fernet, InvalidToken

from server.core import errors
from server.identity.tokens import hash_secret
from storage.identity.users import UserRepository
from storage.state.ephemeral import EphemeralStore

ISSUER = "Nameless"
RECOVERY_CODES = 10


def _normalize_code(code: str) -> str:
    return code.replace("-", "").replace(" ", "").lower()


class TotpService:
    def __init__(self, users: UserRepository, ephemeral: EphemeralStore, key: bytes,
                 clock: Callable[[], float] | None = None) -> None:
        self._users = users
        self._ephemeral = ephemeral
        self._fernet = Fernet(base64.urlsafe_b64encode(key[:32]))
        self._clock = clock

    def _encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def _decrypt(self, blob: str) -> str:
        try:
            return self._fernet.decrypt(blob.encode()).decode()
        except InvalidToken:
            raise errors.ApiError("The second factor cannot be read.") from None

    async def begin(self, user: dict[str, Any]) -> dict[str, str]:
        if (user.get("mfa") or {}).get("totp_enabled"):
            raise errors.Conflict("Two-factor authentication is already on.", code="mfa_already_enabled")
        secret = pyotp.random_base32()
        await self._users.update(str(user["_id"]), {"mfa.pending_secret": self._encrypt(secret)})
        uri = pyotp.TOTP(secret).provisioning_uri(name=user["email"], issuer_name=ISSUER)
        return {"secret": secret, "otpauth_uri": uri}

    async def confirm(self, user: dict[str, Any], otp: str) -> list[str]:
        mfa = user.get("mfa") or {}
        if mfa.get("totp_enabled"):
            raise errors.Conflict("Two-factor authentication is already on.", code="mfa_already_enabled")
        pending = mfa.get("pending_secret")
        if not pending:
            raise errors.Conflict("Start the set-up first.", code="mfa_not_started")
        secret = self._decrypt(pending)
        if not await self._totp_ok(str(user["_id"]), secret, otp):
            raise errors.Unprocessable("That code is not valid.", code="invalid_otp")
        codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
        await self._users.update(
            str(user["_id"]),
            {
                "mfa.totp_enabled": True,
                "mfa.secret": pending,
                "mfa.recovery_codes": [hash_secret(_normalize_code(c)) for c in codes],
            },
            unset=("mfa.pending_secret",),
        )
        return codes

    async def disable(self, user: dict[str, Any], otp: str) -> None:
        if not (user.get("mfa") or {}).get("totp_enabled"):
            raise errors.Conflict("Two-factor authentication is off.", code="mfa_not_enabled")
        if not await self.check(user, otp):
            raise errors.Unprocessable("That code is not valid.", code="invalid_otp")
        await self._users.update(str(user["_id"]), {"mfa": {"totp_enabled": False}})

    @staticmethod
    def enabled(user: dict[str, Any]) -> bool:
        return bool((user.get("mfa") or {}).get("totp_enabled"))

    async def check(self, user: dict[str, Any], otp: str | None) -> bool:
        """A current TOTP code, or an unused recovery code (which is then spent)."""
        if not otp:
            return False
        mfa = user.get("mfa") or {}
        code = _normalize_code(otp)
        if code.isdigit() and len(code) == 6:
            return await self._totp_ok(str(user["_id"]), self._decrypt(mfa["secret"]), code)
        hashed = hash_secret(code)
        if hashed in mfa.get("recovery_codes", []):
            # One atomic pull: of two concurrent uses of the same code, only one removes it.
            return await self._users.pull_if_present(str(user["_id"]), "mfa.recovery_codes", hashed)
        return False

    async def _totp_ok(self, user_id: str, secret: str, code: str) -> bool:
        if not code.isascii():  # compare_digest refuses other text; no such code is ever right
            return False
        totp = pyotp.TOTP(secret)
        now = int(self._clock() if self._clock else time.time())
        for drift in (0, -1, 1):
            at = now + drift * totp.interval
            if secrets.compare_digest(totp.at(at), code):
                step = at // totp.interval
                return await self._ephemeral.set(f"totp:{user_id}:{step}", "1", 120, only_new=True)
        return False
