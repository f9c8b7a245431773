"""Building the services around one platform: the only place that knows who needs whom."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from realtime.gateway import Gateway
from realtime.ops import OpsChannel
from realtime.user_channel import UserChannel
from server.accounts import AccountService
from server.audit import AuditLog
from server.mfa import TotpService
from server.notifications import NotificationService
from server.outbox import Outbox
from server.passwords import PasswordHashing
from server.phone import FirebasePhoneVerifier, PhoneService
from server.platform import Platform
from server.profiles import ProfileService
from server.sessions import SessionService
from server.social import ProviderConfig, ProviderVerifier, SocialService
from server.staff import StaffService
from server.throttle import LoginThrottle
from server.tokens import AccessTokens, derive_key
from storage import audit, identities, notifications, one_time_tokens, outbox, profiles, sessions, users


def index_specs() -> dict[str, list[Any]]:
    specs: dict[str, list[Any]] = {}
    for module in (users, sessions, one_time_tokens, identities, profiles, audit, outbox, notifications):
        for collection, indexes in module.INDEXES.items():
            specs.setdefault(collection, []).extend(indexes)
    return specs


@dataclass
class Services:
    accounts: AccountService
    sessions: SessionService
    social: SocialService
    totp: TotpService
    phone: PhoneService
    profiles: ProfileService
    staff: StaffService
    audit: AuditLog
    audit_repo: audit.AuditRepository
    outbox_repo: outbox.OutboxRepository
    notifications: NotificationService
    gateway: Gateway
    ops: OpsChannel

    async def start(self) -> None:
        """Background work owned by the services: revocation listener, ops snapshots."""
        await self.gateway.start()
        await self.ops.start()

    async def stop(self) -> None:
        await self.ops.stop()
        await self.gateway.stop()


def build_services(platform: Platform, hashing: PasswordHashing | None = None) -> Services:
    settings, db = platform.settings, platform.db
    user_repo = users.UserRepository(db)
    identity_repo = identities.IdentityRepository(db)
    profile_repo = profiles.ProfileRepository(db)
    audit_repo = audit.AuditRepository(db)
    outbox_repo = outbox.OutboxRepository(db)
    keys, active = settings.jwt_keyring(platform.secret_key)
    tokens = AccessTokens(keys, active, dt.timedelta(seconds=settings.access_token_ttl))
    session_service = SessionService(sessions.SessionRepository(db), user_repo, tokens, platform.pubsub)
    totp = TotpService(user_repo, platform.ephemeral, derive_key(platform.secret_key, "totp-secrets"))
    mail = Outbox(outbox_repo, settings.public_url)
    accounts = AccountService(
        user_repo, profile_repo, identity_repo, one_time_tokens.OneTimeTokenRepository(db), session_service,
        hashing or PasswordHashing(), LoginThrottle(platform.ephemeral), totp, mail,
    )
    verifier = ProviderVerifier(ProviderConfig(
        google_client_ids=settings.google_client_ids,
        google_jwks_url=settings.google_jwks_url,
        apple_client_ids=settings.apple_client_ids,
        apple_jwks_url=settings.apple_jwks_url,
        facebook_app_id=settings.facebook_app_id,
        facebook_app_secret=settings.facebook_app_secret.get_secret_value() if settings.facebook_app_secret else "",
        facebook_graph_url=settings.facebook_graph_url,
    ))
    social = SocialService(verifier, identity_repo, user_repo, accounts, session_service, totp)
    audit_log = AuditLog(audit_repo)
    gateway = Gateway(platform, session_service)
    notification_service = NotificationService(notifications.NotificationRepository(db), user_repo, mail, gateway)
    ops = OpsChannel(gateway)
    gateway.register(UserChannel(gateway, notification_service), ops)
    return Services(
        accounts=accounts,
        sessions=session_service,
        social=social,
        totp=totp,
        phone=PhoneService(FirebasePhoneVerifier(settings.firebase_project_id, settings.firebase_certs_url), user_repo),
        profiles=ProfileService(profile_repo),
        staff=StaffService(user_repo, identity_repo, accounts, session_service, audit_log, notification_service),
        audit=audit_log,
        audit_repo=audit_repo,
        outbox_repo=outbox_repo,
        notifications=notification_service,
        gateway=gateway,
        ops=ops,
    )
