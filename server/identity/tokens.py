"""Access tokens (short-lived JWTs) and opaque secrets (refresh, one-time), in one place.

JWTs use one pinned algorithm (HS256) and carry a key id, so keys rotate by adding a new
key, making it active, and dropping the old one after the access-token lifetime.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "nameless"
AUDIENCE = "nameless-api"


class InvalidToken(Exception):
    pass


_RULES: dict[str, Any] = {
    "algorithms": [ALGORITHM],
    "audience": AUDIENCE,
    "issuer": ISSUER,
    "options": {"require": ["exp", "iat", "nbf", "sub", "sid", "iss", "aud"]},
    "leeway": 5,
}


def derive_key(master: bytes, label: str) -> bytes:
    """Independent keys for independent uses, from the one secret."""
    return hmac.new(master, label.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    issued_at: dt.datetime
    expires_at: dt.datetime


class AccessTokens:
    def __init__(self, keys: dict[str, bytes], active_kid: str, ttl: dt.timedelta) -> None:
        if active_kid not in keys:
            raise ValueError("active key id has no key")
        self._keys = dict(keys)
        self._active = active_kid
        self.ttl = ttl

    def issue(self, user_id: str, session_id: str, now: dt.datetime) -> str:
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "sid": session_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl,
        }
        return jwt.encode(payload, self._keys[self._active], algorithm=ALGORITHM, headers={"kid": self._active})

    def verify(self, token: str) -> AccessClaims:
        try:
            claims = self._decode(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from None
        if not isinstance(claims["sub"], str) or not isinstance(claims["sid"], str):
            raise InvalidToken("malformed claims")
        return AccessClaims(
            claims["sub"],
            claims["sid"],
            dt.datetime.fromtimestamp(claims["iat"], dt.UTC),
            dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
        )

    def _decode(self, token: str) -> dict[str, Any]:
        """The claims, parsed once for a token of the active key (nearly every token); a
        token of an older key is parsed again once its header has named that key."""
        with contextlib.suppress(jwt.InvalidSignatureError):
            decoded = jwt.decode_complete(token, self._keys[self._active], **_RULES)
            if decoded["header"].get("kid") == self._active:
                return dict(decoded["payload"])
        header = jwt.get_unverified_header(token)
        key = self._keys.get(str(header.get("kid")))
        if key is None or header.get("alg") != ALGORITHM:
            raise InvalidToken("unknown key or algorithm")
        return dict(jwt.decode(token, key, **_RULES))


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def hash_secret(value: str) -> str:
    """Opaque secrets are high-entropy, so a plain SHA-256 is the right storage hash."""
    return hashlib.sha256(value.encode()).hexdigest()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
