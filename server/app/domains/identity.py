"""Identity: accounts, sessions and tokens, social sign-in, TOTP, phone numbers, profiles."""

from __future__ import annotations

import datetime as dt

from handlers.identity import auth, me
from handlers.routing import API
from server.app.domains.notifications import outbox
from server.app.wiring import Contribution, Wiring
from server.identity.accounts import AccountService
from server.identity.mfa import TotpService
from server.identity.passwords import PasswordHashing
from server.identity.phone import FirebasePhoneVerifier, PhoneService
from server.identity.profiles import ProfileService
from server.identity.sessions import SessionService
from server.identity.social import ProviderConfig, ProviderVerifier, SocialService
from server.identity.throttle import LoginThrottle
from server.identity.tokens import AccessTokens, derive_key
from storage.identity.identities import IdentityRepository
from storage.identity.one_time_tokens import OneTimeTokenRepository
from storage.identity.profiles import ProfileRepository
from storage.identity.sessions import SessionRepository
from storage.identity.users import UserRepository


def wire(ctx: Wiring) -> Contribution:
    settings, platform = ctx.settings, ctx.platform
    users, identities = ctx.repo(UserRepository), ctx.repo(IdentityRepository)
    keys, active = settings.jwt_keyring(platform.secret_key)
    tokens = AccessTokens(keys, active, dt.timedelta(seconds=settings.access_token_ttl))
    sessions = SessionService(ctx.repo(SessionRepository), users, tokens, platform.pubsub,
                              cache_ttl_s=settings.session_cache_seconds)
    totp = TotpService(users, platform.ephemeral, derive_key(platform.secret_key, "totp-secrets"))
    accounts = AccountService(
        users, ctx.repo(ProfileRepository), identities, ctx.repo(OneTimeTokenRepository), sessions,
        PasswordHashing(), LoginThrottle(platform.ephemeral), totp, outbox(ctx),
    )
    accounts.register_links(outbox(ctx))
    verifier = ProviderVerifier(ProviderConfig(
        google_client_ids=settings.google_client_ids,
        google_jwks_url=settings.google_jwks_url,
        apple_client_ids=settings.apple_client_ids,
        apple_jwks_url=settings.apple_jwks_url,
        facebook_app_id=settings.facebook_app_id,
        facebook_app_secret=settings.facebook_app_secret.get_secret_value() if settings.facebook_app_secret else "",
        facebook_graph_url=settings.facebook_graph_url,
    ))
    social = SocialService(verifier, identities, users, accounts, sessions, totp)
    phone = PhoneService(FirebasePhoneVerifier(settings.firebase_project_id, settings.firebase_certs_url), users)
    profiles = ProfileService(ctx.repo(ProfileRepository), ctx.platform.pubsub)
    return Contribution(
        services={"accounts": accounts, "sessions": sessions, "social": social, "totp": totp, "phone": phone,
                  "profiles": profiles},
        routes={API: [*auth.routes(accounts, sessions, social),
                     *me.routes(accounts, sessions, social, totp, phone, profiles)]},
        start=[sessions.start_cache, profiles.start],
        stop=[sessions.stop_cache, profiles.stop],
    )
