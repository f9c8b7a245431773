"""The signed-in user's own account: profile data, sessions, linked providers, 2FA, profiles."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from handlers.base import endpoint
from handlers.identity.auth import ProviderTokens
from handlers.identity.models import PhoneVerified, Profile, Profiles, Sessions, TotpEnabled, TotpSetup
from handlers.models import Account
from handlers.routing import ApiHandler
from server.core import errors
from server.core.fields import Body, Language, Otp, Secret, Text
from server.core.ids import ID_PATTERN
from server.identity.accounts import AccountService
from server.identity.mfa import TotpService
from server.identity.phone import PhoneService
from server.identity.profiles import ProfileService
from server.identity.sessions import SessionService
from server.identity.social import SocialService

TAGS = ("me",)
Avatar = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,40}$")]
ProfileName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


def refuse_nulls(body: Body, *names: str) -> None:
    """On PATCH an absent field stays as it is; an explicit null cannot empty one that must
    have a value."""
    nulls = {name: "cannot be empty" for name in names if name in body.model_fields_set and getattr(body, name) is None}
    if nulls:
        raise errors.ValidationFailed(details={"fields": nulls})


class MePatch(Body):
    display_name: Text | None = None
    preferences: dict[str, str | bool | int | None] | None = None


class OtpBody(Body):
    otp: Otp


class PhoneBody(Body):
    firebase_id_token: Secret


class PhoneHandler(ApiHandler):
    def initialize(self, phone: PhoneService) -> None:
        self.phone = phone

    @endpoint("Verify my phone number with a Firebase phone sign-in ID token", body=PhoneBody,
              response=PhoneVerified, auth=True, tags=TAGS, errors=(401, 409, 422, 503))
    async def post(self) -> None:
        body = self.parse(PhoneBody)
        number = await self.phone.verify(self.user.user_id, body.firebase_id_token)
        self.reply({"phone": {"number": number, "verified": True}})


class ProfileCreate(Body):
    name: ProfileName
    kids: bool = False
    avatar: Avatar | None = None
    language: Language | None = None


class ProfilePatch(Body):
    name: ProfileName | None = None
    kids: bool | None = None
    avatar: Avatar | None = None
    language: Language | None = None


class MeHandler(ApiHandler):
    def initialize(self, accounts: AccountService) -> None:
        self.accounts = accounts

    @endpoint("My account", response=Account, auth=True, tags=TAGS)
    async def get(self) -> None:
        self.reply(await self.accounts.view(await self.accounts.get(self.user.user_id)))

    @endpoint("Change my display name or preferences", body=MePatch, response=Account, auth=True, tags=TAGS)
    async def patch(self) -> None:
        body = self.parse(MePatch)
        refuse_nulls(body, "display_name")
        self.reply(await self.accounts.update_me(self.user.user_id, body.model_dump(exclude_unset=True)))


class SessionsHandler(ApiHandler):
    def initialize(self, sessions: SessionService) -> None:
        self.sessions = sessions

    @endpoint("My signed-in devices", response=Sessions, auth=True, tags=TAGS)
    async def get(self) -> None:
        self.reply({"items": await self.sessions.list(self.user.user_id, self.user.session_id), "next_cursor": None})


class SessionHandler(ApiHandler):
    def initialize(self, sessions: SessionService) -> None:
        self.sessions = sessions

    @endpoint("Sign one device out now", status=204, auth=True, tags=TAGS, errors=(404,))
    async def delete(self, session_id: str) -> None:
        await self.sessions.revoke_own(self.user.user_id, session_id)
        self.no_content()


class LinkHandler(ApiHandler):
    def initialize(self, social: SocialService) -> None:
        self.social = social

    @endpoint("Link a Google, Apple or Facebook account", body=ProviderTokens, status=204, auth=True, tags=TAGS,
              errors=(401, 409, 503))
    async def post(self, provider: str) -> None:
        body = self.parse(ProviderTokens)
        token = body.access_token if provider == "facebook" else body.id_token
        if not token:
            field = "access_token" if provider == "facebook" else "id_token"
            raise errors.ValidationFailed(details={"fields": {field: "required"}})
        await self.social.link(self.user.user_id, provider, token, body.nonce)
        self.no_content()

    @endpoint("Unlink a provider (never the last way to sign in)", status=204, auth=True, tags=TAGS,
              errors=(404, 409))
    async def delete(self, provider: str) -> None:
        await self.social.unlink(self.user.user_id, provider)
        self.no_content()


class TotpHandler(ApiHandler):
    def initialize(self, accounts: AccountService, totp: TotpService) -> None:
        self.accounts = accounts
        self.totp = totp

    @endpoint("Start TOTP set-up: a secret and an otpauth URI for the authenticator app", response=TotpSetup,
              auth=True, tags=TAGS, errors=(409,))
    async def post(self) -> None:
        user = await self.accounts.get(self.user.user_id)
        self.reply(await self.totp.begin(user))

    @endpoint("Turn TOTP off (needs a current code)", body=OtpBody, status=204, auth=True, tags=TAGS,
              errors=(409, 422))
    async def delete(self) -> None:
        body = self.parse(OtpBody)
        await self.totp.disable(await self.accounts.get(self.user.user_id), body.otp)
        self.no_content()


class TotpConfirmHandler(ApiHandler):
    def initialize(self, accounts: AccountService, totp: TotpService) -> None:
        self.accounts = accounts
        self.totp = totp

    @endpoint("Confirm TOTP with a first code; returns recovery codes, shown only once", body=OtpBody,
              response=TotpEnabled, auth=True, tags=TAGS, errors=(409, 422))
    async def post(self) -> None:
        body = self.parse(OtpBody)
        codes = await self.totp.confirm(await self.accounts.get(self.user.user_id), body.otp)
        self.reply({"enabled": True, "recovery_codes": codes})


class ProfilesHandler(ApiHandler):
    def initialize(self, profiles: ProfileService) -> None:
        self.profiles = profiles

    @endpoint("My viewing profiles", response=Profiles, auth=True, tags=TAGS)
    async def get(self) -> None:
        self.reply({"items": await self.profiles.list(self.user.user_id), "next_cursor": None})

    @endpoint("Add a viewing profile (up to 5)", body=ProfileCreate, response=Profile, status=201, auth=True,
              tags=TAGS, errors=(409,))
    async def post(self) -> None:
        body = self.parse(ProfileCreate)
        self.reply(await self.profiles.create(self.user.user_id, body.model_dump()), 201)


class ProfileHandler(ApiHandler):
    def initialize(self, profiles: ProfileService) -> None:
        self.profiles = profiles

    @endpoint("Change a viewing profile", body=ProfilePatch, response=Profile, auth=True, tags=TAGS,
              errors=(404,))
    async def patch(self, profile_id: str) -> None:
        body = self.parse(ProfilePatch)
        refuse_nulls(body, "name", "kids")
        self.reply(await self.profiles.update(self.user.user_id, profile_id, body.model_dump(exclude_unset=True)))

    @endpoint("Delete a viewing profile", status=204, auth=True, tags=TAGS, errors=(404, 409))
    async def delete(self, profile_id: str) -> None:
        await self.profiles.delete(self.user.user_id, profile_id)
        self.no_content()


def routes(accounts: AccountService, sessions: SessionService, social: SocialService, totp: TotpService,
           phone: PhoneService, profiles: ProfileService) -> list:
    return [
        (r"/me", MeHandler, {"accounts": accounts}),
        (r"/me/sessions", SessionsHandler, {"sessions": sessions}),
        (r"/me/sessions/(?P<session_id>[A-Za-z0-9_-]{1,64})", SessionHandler, {"sessions": sessions}),
        (r"/me/links/(?P<provider>google|apple|facebook)", LinkHandler, {"social": social}),
        (r"/me/mfa/totp", TotpHandler, {"accounts": accounts, "totp": totp}),
        (r"/me/mfa/totp/confirm", TotpConfirmHandler, {"accounts": accounts, "totp": totp}),
        (r"/me/phone", PhoneHandler, {"phone": phone}),
        (r"/me/profiles", ProfilesHandler, {"profiles": profiles}),
        (rf"/me/profiles/(?P<profile_id>{ID_PATTERN})", ProfileHandler, {"profiles": profiles}),
    ]
