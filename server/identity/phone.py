"""Verified phone numbers from Firebase phone sign-in.

The app signs the user in with Firebase phone auth and sends us the Firebase ID token. We
verify it as Firebase documents for third-party JWT libraries: RS256, a key id from
Google's published certificates, audience = project id, issuer =
https://securetoken.google.com/<project id>, a subject, an auth_time in the past, and a
`phone_number` claim from the phone provider (docs/decisions.md says why not firebase-admin
here).
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from tornado.httpclient import AsyncHTTPClient

from server.core import errors
from server.core.clock import now, to_ms
from server.identity.provider_keys import ProviderKeys, parse_x509_map
from storage.identity.users import UserRepository

CERTS_URL = "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"


class FirebasePhoneVerifier:
    def __init__(self, project_id: str, certs_url: str = CERTS_URL, http: AsyncHTTPClient | None = None) -> None:
        self._project = project_id
        self._keys = ProviderKeys(certs_url, http or AsyncHTTPClient(), parse_x509_map)

    async def phone_number(self, token: str) -> str:
        if not self._project:
            raise errors.ServiceUnavailable("Phone verification is not configured: set FIREBASE_PROJECT_ID.",
                                            code="phone_not_configured", details={"setting": "FIREBASE_PROJECT_ID"})
        invalid = errors.Unauthorized("The Firebase token is not valid.", code="invalid_firebase_token")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "RS256":
                raise invalid
            key = await self._keys.key(str(header.get("kid")))
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=["RS256"], audience=self._project,
                issuer=f"https://securetoken.google.com/{self._project}",
                options={"require": ["exp", "iat", "sub", "auth_time"]}, leeway=30,
            )
        except (jwt.PyJWTError, KeyError):
            raise invalid from None
        if not claims["sub"] or claims["auth_time"] > time.time() + 30:
            raise invalid
        phone = claims.get("phone_number")
        provider = (claims.get("firebase") or {}).get("sign_in_provider")
        if not phone or provider != "phone":
            raise errors.Unprocessable("The Firebase token carries no verified phone number.",
                                       code="phone_number_missing")
        return str(phone)


class PhoneService:
    def __init__(self, verifier: FirebasePhoneVerifier, users: UserRepository) -> None:
        self._verifier = verifier
        self._users = users

    async def verify(self, user_id: str, firebase_id_token: str) -> str:
        number = await self._verifier.phone_number(firebase_id_token)
        holder = await self._users.by_phone(number)
        if holder is not None and holder["_id"] != user_id:
            raise errors.Conflict("This phone number belongs to another account.", code="phone_taken")
        await self._users.update(user_id, {"phone": {"number": number, "verified_ms": to_ms(now())}})
        return number
