"""Public signing keys published by identity providers, fetched and cached.

Google and Apple publish JWKS documents; Firebase publishes a map of key id to X.509
certificate. Both are refetched hourly, or when a token names a key id we have not seen
(at most every 30 s, so junk tokens cannot hammer the provider).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography import x509
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from server.core import errors


def parse_jwks(body: bytes) -> dict[str, Any]:
    keyset = jwt.PyJWKSet.from_dict(json.loads(body))
    return {k.key_id: k for k in keyset.keys if k.key_id}


def parse_x509_map(body: bytes) -> dict[str, Any]:
    return {kid: x509.load_pem_x509_certificate(pem.encode()).public_key() for kid, pem in json.loads(body).items()}


class ProviderKeys:
    def __init__(self, url: str, http: AsyncHTTPClient, parse: Callable[[bytes], dict[str, Any]],
                 max_age: float = 3600) -> None:
        self._url = url
        self._http = http
        self._parse = parse
        self._max_age = max_age
        self._keys: dict[str, Any] = {}
        self._fetched = -1e9
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> Any:
        """The key for `kid`; KeyError if the provider does not publish it."""
        if kid not in self._keys or time.monotonic() - self._fetched > self._max_age:
            async with self._lock:
                since = time.monotonic() - self._fetched
                if since > self._max_age or (kid not in self._keys and since > 30):
                    await self._refresh()
        return self._keys[kid]

    async def _refresh(self) -> None:
        try:
            resp = await self._http.fetch(self._url, request_timeout=10)
            self._keys = self._parse(resp.body)
        except (HTTPClientError, OSError, ValueError, TypeError, jwt.PyJWTError) as exc:
            raise errors.ServiceUnavailable("The sign-in provider's keys cannot be fetched.",
                                            code="provider_unavailable") from exc
        self._fetched = time.monotonic()
