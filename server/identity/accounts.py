"""Accounts: sign-up, password sign-in, email verification, password reset, the account
view and what a user may change about themselves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from server.core import errors
from server.core.clock import iso, to_ms
from server.core.permissions import Role
from server.identity.mfa import TotpService
from server.identity.passwords import PasswordHashing, policy_problem
from server.identity.sessions import ClientInfo, SessionService, TokenPair, utcnow
from server.identity.throttle import LoginThrottle
from server.identity.tokens import hash_secret, new_secret
from server.notifications.outbox import Outbox
from storage.identity.identities import IdentityRepository
from storage.identity.one_time_tokens import OneTimeTokenRepository
from storage.identity.profiles import ProfileRepository
from storage.identity.users import EmailTaken, UserRepository

VERIFY_TTL = dt.timedelta(days=2)
RESET_TTL = dt.timedelta(hours=1)
PREFERENCE_KEYS = frozenset({"language", "subtitles", "autoplay_next", "autoplay_previews", "maturity"})


def normalize_email(email: str) -> str:
    return email.strip().lower()


def weak_password(password: str, email: str, display_name: str = "") -> None:
    problem = policy_problem(password, user_inputs=[email, email.split("@")[0], display_name, "nameless"])
    if problem:
        raise errors.ValidationFailed(
            f"The password {problem}.", code="weak_password", details={"fields": {"password": problem}}
        )


class AccountService:
    def __init__(
        self,
        users: UserRepository,
        profiles: ProfileRepository,
        identities: IdentityRepository,
        one_time: OneTimeTokenRepository,
        sessions: SessionService,
        hashing: PasswordHashing,
        throttle: LoginThrottle,
        totp: TotpService,
        outbox: Outbox,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._users = users
        self._profiles = profiles
        self._identities = identities
        self._one_time = one_time
        self._sessions = sessions
        self._hashing = hashing
        self._throttle = throttle
        self._totp = totp
        self._outbox = outbox
        self._clock = clock

    # --- creating accounts ---------------------------------------------------------

    async def create_user(
        self,
        email: str,
        display_name: str,
        *,
        password: str | None,
        roles: list[str] | None = None,
        email_verified: bool = False,
    ) -> dict[str, Any]:
        email = normalize_email(email)
        if password is not None:
            weak_password(password, email, display_name)
        now = self._clock()
        doc = {
            "email": email,
            "email_verified": email_verified,
            "password_hash": await self._hashing.hash(password) if password else None,
            "display_name": display_name.strip(),
            "roles": roles or [Role.VIEWER.value],
            "status": "active",
            "mfa": {"totp_enabled": False},
            "phone": None,
            "preferences": {},
            "created_at": now,
            "updated_ms": to_ms(now),
        }
        try:
            user = await self._users.insert(doc)
        except EmailTaken:
            raise errors.Conflict("An account with this email already exists.", code="email_taken") from None
        await self._profiles.insert(
            {"user_id": str(user["_id"]), "name": doc["display_name"] or "Me", "kids": False, "created_at": now}
        )
        if not email_verified:
            await self.send_verification(user)
        return user

    async def signup(self, email: str, password: str, display_name: str, client: ClientInfo) -> tuple[dict, TokenPair]:
        user = await self.create_user(email, display_name, password=password)
        return user, await self._sessions.start(str(user["_id"]), client, method="password")

    # --- signing in ----------------------------------------------------------------

    async def login(self, email: str, password: str, otp: str | None, client: ClientInfo) -> TokenPair:
        account = normalize_email(email)
        await self._throttle.check(account, client.ip)
        user = await self._users.by_email(account)
        ok = await self._hashing.verify(user.get("password_hash") if user else None, password)
        if not ok or user is None:
            await self._throttle.failed(account, client.ip)
            raise errors.Unauthorized("The email or password is wrong.", code="invalid_credentials")
        if user.get("status") != "active":
            raise errors.Forbidden("This account is suspended.", code="account_suspended")
        if self._totp.enabled(user) and not await self._totp.check(user, otp):
            if otp:
                await self._throttle.failed(account, client.ip)
            raise errors.Unauthorized("Enter the code from your authenticator app.", code="otp_required")
        await self._throttle.succeeded(account, client.ip)
        if self._hashing.needs_rehash(user["password_hash"]):
            await self._users.update(str(user["_id"]), {"password_hash": await self._hashing.hash(password)})
        return await self._sessions.start(str(user["_id"]), client, method="password")

    # --- email verification and password reset -----------------------------------

    def register_links(self, outbox: Outbox) -> None:
        """The outbox asks for these links' tokens when it renders a message for sending, so
        no stored message holds a usable secret."""
        outbox.register_link("verify_email", "/verify-email", self.issue_verification_token)
        outbox.register_link("reset_password", "/reset-password", self.issue_reset_token)

    async def send_verification(self, user: dict[str, Any]) -> None:
        await self._outbox.email(
            user["email"], "verify_email", "Confirm your email",
            "Confirm your email address for Nameless by opening the link below.",
            link_purpose="verify_email", user_id=str(user["_id"]),
        )

    async def issue_verification_token(self, user_id: str, requested_at: dt.datetime) -> str | None:
        """A fresh verification token for a message being sent; None once verified or stale."""
        now = self._clock()
        user = await self._users.get(user_id)
        if user is None or user.get("email_verified") or now - requested_at > VERIFY_TTL:
            return None
        token = new_secret()
        await self._one_time.create(hash_secret(token), user_id, "verify_email", now + VERIFY_TTL)
        return token

    async def issue_reset_token(self, user_id: str, requested_at: dt.datetime) -> str | None:
        """A fresh reset token for a message being sent, ending every earlier one; None when
        the request is older than a reset link lives or the account cannot sign in."""
        now = self._clock()
        user = await self._users.get(user_id)
        if user is None or user.get("status") != "active" or now - requested_at > RESET_TTL:
            return None
        token = new_secret()
        await self._one_time.invalidate(user_id, "reset_password", now)
        await self._one_time.create(hash_secret(token), user_id, "reset_password", now + RESET_TTL)
        return token

    async def verify_email(self, token: str) -> None:
        record = await self._one_time.consume(hash_secret(token), "verify_email", self._clock())
        if record is None:
            raise errors.Unprocessable("This link is invalid or has expired.", code="invalid_token")
        user = await self._users.update(record["user_id"], {"email_verified": True})
        if user is not None:  # a verified address joins the mailing audience (marketing per preferences)
            await self._outbox.sync_member(str(user["_id"]), user["email"])

    async def forgot_password(self, email: str) -> None:
        """Always looks the same to the caller, whether the account exists or not."""
        user = await self._users.by_email(normalize_email(email))
        if user is None or user.get("status") != "active":
            return
        await self._one_time.invalidate(str(user["_id"]), "reset_password", self._clock())
        await self._outbox.email(
            user["email"], "reset_password", "Reset your password",
            "Someone asked to reset your Nameless password. If it was you, open the link below.",
            link_purpose="reset_password", user_id=str(user["_id"]),
        )

    async def reset_password(self, token: str, password: str) -> None:
        record = await self._one_time.peek(hash_secret(token), "reset_password", self._clock())
        if record is None:
            raise errors.Unprocessable("This link is invalid or has expired.", code="invalid_token")
        user = await self._users.get(record["user_id"])
        if user is None:
            raise errors.Unprocessable("This link is invalid or has expired.", code="invalid_token")
        weak_password(password, user["email"], user.get("display_name", ""))
        # Validate first, then spend the token: a rejected password leaves the link usable.
        if await self._one_time.consume(hash_secret(token), "reset_password", self._clock()) is None:
            raise errors.Unprocessable("This link is invalid or has expired.", code="invalid_token")
        await self._users.update(
            record["user_id"], {"password_hash": await self._hashing.hash(password), "email_verified": True}
        )
        await self._sessions.revoke_all(record["user_id"], reason="password_reset")
        await self._throttle.clear_account(user["email"])

    # --- the account itself --------------------------------------------------------

    async def get(self, user_id: str) -> dict[str, Any]:
        user = await self._users.get(user_id)
        if user is None:
            raise errors.NotFound("No such account.", code="account_not_found")
        return user

    async def view(self, user: dict[str, Any]) -> dict[str, Any]:
        identities = await self._identities.for_user(str(user["_id"]))
        return account_view(user, [i["provider"] for i in identities])

    async def update_me(self, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Only display_name and known preferences: roles, email and status are not the
        user's to set (mass assignment)."""
        update: dict[str, Any] = {}
        if "display_name" in changes:
            update["display_name"] = changes["display_name"].strip()
        for key, value in (changes.get("preferences") or {}).items():
            if key not in PREFERENCE_KEYS:
                raise errors.ValidationFailed(details={"fields": {f"preferences.{key}": "unknown preference"}})
            update[f"preferences.{key}"] = value
        user = await self._users.update(user_id, update) if update else await self._users.get(user_id)
        if user is None:
            raise errors.NotFound("No such account.", code="account_not_found")
        return await self.view(user)


def account_view(user: dict[str, Any], providers: list[str]) -> dict[str, Any]:
    """The account as the contract shows it: never hashes, secrets or internal fields."""
    mfa = user.get("mfa") or {}
    phone = user.get("phone") or None
    methods = (["password"] if user.get("password_hash") else []) + sorted(providers)
    return {
        "id": str(user["_id"]),
        "email": user["email"],
        "display_name": user.get("display_name", ""),
        "roles": list(user.get("roles", [])),
        "status": user.get("status", "active"),
        "email_verified": bool(user.get("email_verified")),
        "mfa": {"totp": bool(mfa.get("totp_enabled")),
                "recovery_codes_left": len(mfa.get("recovery_codes", [])) if mfa.get("totp_enabled") else 0},
        "providers": sorted(providers),
        "sign_in_methods": methods,
        "phone": {"number": phone["number"], "verified": True} if phone else None,
        "preferences": user.get("preferences") or {},
        "created_at": iso(user["created_at"]),
    }
