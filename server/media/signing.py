"""Signed media URLs: one token per playlist covers every file under its path prefix.

A token binds the account, the playback session, the asset version's path prefix, the
highest rendition the plan allows, and an expiry; it is HMAC-SHA256 signed with a key of
its own (derived from the server secret). A changed path, another title, an expired or a
missing token are all refused before any file is touched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass


class BadToken(Exception):
    pass


@dataclass(frozen=True)
class MediaGrant:
    account_id: str
    playback_id: str
    prefix: str  # e.g. "assets/<asset>/v2/" or "assets/<asset>/v2/720p/"
    max_height: int
    expires: int

    def covers(self, key: str) -> bool:
        return key.startswith(self.prefix) and ".." not in key.split("/")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class MediaSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, grant: MediaGrant) -> str:
        body = _b64(json.dumps([grant.account_id, grant.playback_id, grant.prefix, grant.max_height, grant.expires],
                               separators=(",", ":")).encode())
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:20]
        return f"{body}.{_b64(mac)}"

    def verify(self, token: str | None, now: float | None = None) -> MediaGrant:
        if not token or token.count(".") != 1:
            raise BadToken("missing or malformed")
        body, mac = token.split(".")
        expected = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:20]
        try:
            given = _unb64(mac)
        except ValueError:
            raise BadToken("malformed signature") from None
        if not hmac.compare_digest(expected, given):
            raise BadToken("bad signature")
        try:
            account, playback, prefix, max_height, expires = json.loads(_unb64(body))
        except (ValueError, TypeError):
            raise BadToken("malformed body") from None
        if int(expires) < (now if now is not None else time.time()):
            raise BadToken("expired")
        return MediaGrant(str(account), str(playback), str(prefix), int(max_height), int(expires))
