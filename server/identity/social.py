"""Social sign-in: verifying Google and Apple ID tokens against the providers' published
keys, Facebook access tokens with the Graph API's token check, and linking identities.

An existing account with the same email is never linked automatically: its owner signs in
first and links the provider from their account (proof of ownership).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from tornado.httpclient import AsyncHTTPClient

from server.core import errors
from server.identity.accounts import AccountService, normalize_email
from server.identity.mfa import TotpService
from server.identity.provider_keys import ProviderKeys, parse_jwks
from server.identity.sessions import ClientInfo, SessionService, TokenPair, utcnow
from storage.identity.identities import IdentityRepository, IdentityTaken
from storage.identity.users import UserRepository

PROVIDERS = ("google", "apple", "facebook")


@dataclass(frozen=True)
class ProviderIdentity:
    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str


@dataclass(frozen=True)
class ProviderConfig:
    google_client_ids: tuple[str, ...] = ()
    google_jwks_url: str = "https://www.googleapis.com/oauth2/v3/certs"
    apple_client_ids: tuple[str, ...] = ()
    apple_jwks_url: str = "https://appleid.apple.com/auth/keys"
    facebook_app_id: str = ""
    facebook_app_secret: str = ""
    facebook_graph_url: str = "https://graph.facebook.com/v19.0"


def _invalid(provider: str) -> errors.ApiError:
    return errors.Unauthorized(f"The {provider} sign-in token is not valid.", code="invalid_provider_token")


class ProviderVerifier:
    def __init__(self, config: ProviderConfig, http: AsyncHTTPClient | None = None) -> None:
        self._config = config
        self._http = http or AsyncHTTPClient()
        self._jwks = {
            "google": ProviderKeys(config.google_jwks_url, self._http, parse_jwks),
            "apple": ProviderKeys(config.apple_jwks_url, self._http, parse_jwks),
        }

    def _require(self, provider: str) -> None:
        c = self._config
        missing = {
            "google": None if c.google_client_ids else "GOOGLE_CLIENT_IDS",
            "apple": None if c.apple_client_ids else "APPLE_CLIENT_IDS",
            "facebook": None if c.facebook_app_id and c.facebook_app_secret
            else "FACEBOOK_APP_ID and FACEBOOK_APP_SECRET",
        }[provider]
        if missing:
            raise errors.ServiceUnavailable(
                f"{provider.title()} sign-in is not configured: set {missing}.", code="provider_not_configured",
                details={"setting": missing},
            )

    async def verify(self, provider: str, token: str, nonce: str | None = None) -> ProviderIdentity:
        if provider not in PROVIDERS:
            raise errors.NotFound("No such sign-in provider.", code="provider_not_found")
        self._require(provider)
        if provider == "facebook":
            return await self._facebook(token)
        return await self._id_token(provider, token, nonce)

    async def _id_token(self, provider: str, token: str, nonce: str | None) -> ProviderIdentity:
        if provider == "google":
            issuers, audiences = ["accounts.google.com", "https://accounts.google.com"], self._config.google_client_ids
        else:
            issuers, audiences = ["https://appleid.apple.com"], self._config.apple_client_ids
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "RS256":
                raise _invalid(provider)
            key = await self._jwks[provider].key(str(header.get("kid")))
            claims = jwt.decode(
                token, key, algorithms=["RS256"], audience=list(audiences), issuer=issuers,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]}, leeway=30,
            )
        except (jwt.PyJWTError, KeyError):
            raise _invalid(provider) from None
        if nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise _invalid(provider)
        email = claims.get("email")
        verified = claims.get("email_verified") in (True, "true")
        return ProviderIdentity(provider, str(claims["sub"]), normalize_email(email) if email else None,
                                verified, str(claims.get("name") or ""))

    async def _facebook(self, token: str) -> ProviderIdentity:
        c = self._config
        app_token = f"{c.facebook_app_id}|{c.facebook_app_secret}"
        debug = await self._graph("/debug_token", {"input_token": token, "access_token": app_token})
        data = debug.get("data") or {}
        expires = data.get("expires_at") or 0
        if (not data.get("is_valid") or str(data.get("app_id")) != c.facebook_app_id
                or (expires and expires < time.time()) or not data.get("user_id")):
            raise _invalid("facebook")
        proof = hmac.new(c.facebook_app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        me = await self._graph("/me", {"fields": "id,name,email", "access_token": token, "appsecret_proof": proof})
        if str(me.get("id")) != str(data["user_id"]):
            raise _invalid("facebook")
        email = me.get("email")
        # Facebook returns only confirmed addresses.
        return ProviderIdentity("facebook", str(me["id"]), normalize_email(email) if email else None,
                                bool(email), str(me.get("name") or ""))

    async def _graph(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = self._config.facebook_graph_url.rstrip("/") + path + "?" + urllib.parse.urlencode(params)
        try:
            resp = await self._http.fetch(url, request_timeout=10, raise_error=False)
        except OSError as exc:
            raise errors.ServiceUnavailable("Facebook cannot be reached.", code="provider_unavailable") from exc
        if resp.code >= 500 or resp.code == 599:
            raise errors.ServiceUnavailable("Facebook cannot be reached.", code="provider_unavailable")
        if resp.code != 200:
            raise _invalid("facebook")
        try:
            return json.loads(resp.body)
        except ValueError:
            raise _invalid("facebook") from None


class SocialService:
    def __init__(
        self,
        verifier: ProviderVerifier,
        identities: IdentityRepository,
        users: UserRepository,
        accounts: AccountService,
        sessions: SessionService,
        totp: TotpService,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._verifier = verifier
        self._identities = identities
        self._users = users
        self._accounts = accounts
        self._sessions = sessions
        self._totp = totp
        self._clock = clock

    async def sign_in(self, provider: str, token: str, *, nonce: str | None, otp: str | None,
                      client: ClientInfo) -> tuple[TokenPair, bool]:
        """Tokens for the linked account, creating the account on first use; the flag says
        whether it was created."""
        ident = await self._verifier.verify(provider, token, nonce)
        linked = await self._identities.find(provider, ident.subject)
        created = False
        if linked is not None:
            user = await self._users.get(linked["user_id"])
            if user is None:
                raise _invalid(provider)
        else:
            if not ident.email or not ident.email_verified:
                raise errors.Unprocessable(
                    f"Your {provider} account has no verified email; sign up with email first.",
                    code="verified_email_required",
                )
            if await self._users.by_email(ident.email) is not None:
                raise errors.Conflict(
                    "An account with this email exists. Sign in to it, then link this provider.",
                    code="account_exists_link_required", details={"provider": provider},
                )
            user = await self._accounts.create_user(ident.email, ident.name or ident.email.split("@")[0],
                                                    password=None, email_verified=True)
            await self._link(str(user["_id"]), ident)
            created = True
        if user.get("status") != "active":
            raise errors.Forbidden("This account is suspended.", code="account_suspended")
        if self._totp.enabled(user) and not await self._totp.check(user, otp):
            raise errors.Unauthorized("Enter the code from your authenticator app.", code="otp_required")
        return await self._sessions.start(str(user["_id"]), client, method=provider), created

    async def link(self, user_id: str, provider: str, token: str, nonce: str | None) -> None:
        ident = await self._verifier.verify(provider, token, nonce)
        existing = await self._identities.find(provider, ident.subject)
        if existing is not None:
            if existing["user_id"] == user_id:
                return
            raise errors.Conflict(f"This {provider} account is linked to another user.", code="identity_taken")
        await self._link(user_id, ident)

    async def _link(self, user_id: str, ident: ProviderIdentity) -> None:
        try:
            await self._identities.link({
                "user_id": user_id, "provider": ident.provider, "subject": ident.subject,
                "email": ident.email, "linked_at": self._clock(),
            })
        except IdentityTaken:
            raise errors.Conflict(f"A {ident.provider} account is already linked.", code="identity_taken") from None

    async def unlink(self, user_id: str, provider: str) -> None:
        user = await self._accounts.get(user_id)
        linked = await self._identities.for_user(user_id)
        if provider not in {i["provider"] for i in linked}:
            raise errors.NotFound(f"No {provider} account is linked.", code="link_not_found")
        if len(linked) + (1 if user.get("password_hash") else 0) <= 1:
            raise errors.Conflict("This is your only way to sign in; add another first.",
                                  code="last_sign_in_method")
        await self._identities.unlink(user_id, provider)
