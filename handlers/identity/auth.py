"""Sign-up, sign-in, token refresh, logout, social sign-in, password reset, email check."""

from __future__ import annotations

from pydantic import EmailStr

from handlers.base import endpoint
from handlers.models import Accepted, SignedUp, SocialTokens, Tokens
from handlers.routing import ApiHandler
from server.core import errors
from server.core.fields import Body, Otp, Password, Secret, Text
from server.identity.accounts import AccountService
from server.identity.sessions import SessionService
from server.identity.social import SocialService

TAGS = ("accounts",)


class SignupBody(Body):
    email: EmailStr
    password: Password
    display_name: Text


class LoginBody(Body):
    email: EmailStr
    password: Password
    otp: Otp | None = None


class RefreshBody(Body):
    refresh_token: Secret


class ProviderTokens(Body):
    """What a Google, Apple or Facebook sign-in hands the app, to sign in or to link."""

    id_token: Secret | None = None
    access_token: Secret | None = None
    nonce: Secret | None = None


class SocialBody(ProviderTokens):
    otp: Otp | None = None


class EmailBody(Body):
    email: EmailStr


class ResetBody(Body):
    token: Secret
    password: Password


class TokenBody(Body):
    token: Secret


class AuthHandler(ApiHandler):
    def initialize(self, accounts: AccountService, sessions: SessionService, social: SocialService) -> None:
        self.accounts = accounts
        self.sessions = sessions
        self.social = social

    async def admit(self) -> None:
        # Anonymous endpoints that cost an argon2 hash or send mail get a tighter budget per IP.
        if self.request.method == "POST":
            await self.enforce_rate_limit(f"auth:{self.client_ip}", self.platform.settings.rate_limit_auth, 60, "auth")


class SignupHandler(AuthHandler):
    @endpoint("Create an account with email and password", body=SignupBody, response=SignedUp, status=201,
              tags=TAGS, errors=(409,))
    async def post(self) -> None:
        body = self.parse(SignupBody)
        user, pair = await self.accounts.signup(body.email, body.password, body.display_name, self.client_info())
        self.reply({"user": await self.accounts.view(user), **pair.body()}, 201)


class LoginHandler(AuthHandler):
    @endpoint("Sign in with email and password (and a second factor when enabled)", body=LoginBody,
              response=Tokens, tags=TAGS, errors=(401, 403))
    async def post(self) -> None:
        body = self.parse(LoginBody)
        pair = await self.accounts.login(body.email, body.password, body.otp, self.client_info())
        self.reply(pair.body())


class RefreshHandler(AuthHandler):
    @endpoint("Rotate the refresh token for a new token pair", body=RefreshBody, response=Tokens, tags=TAGS,
              errors=(401,))
    async def post(self) -> None:
        body = self.parse(RefreshBody)
        pair = await self.sessions.refresh(body.refresh_token, self.client_info())
        self.reply(pair.body())


class LogoutHandler(AuthHandler):
    @endpoint("End the session of this refresh token", body=RefreshBody, status=204, tags=TAGS)
    async def post(self) -> None:
        body = self.parse(RefreshBody)
        await self.sessions.logout(body.refresh_token)
        self.no_content()


class SocialHandler(AuthHandler):
    @endpoint("Sign in (or sign up) with Google, Apple or Facebook", body=SocialBody, response=SocialTokens,
              status=(200, 201), tags=TAGS, errors=(401, 404, 409, 422, 503))
    async def post(self, provider: str) -> None:
        body = self.parse(SocialBody)
        token = body.access_token if provider == "facebook" else body.id_token
        if not token:
            field = "access_token" if provider == "facebook" else "id_token"
            raise errors.ValidationFailed(details={"fields": {field: "required"}})
        pair, created = await self.social.sign_in(provider, token, nonce=body.nonce, otp=body.otp,
                                                  client=self.client_info())
        self.reply({**pair.body(), "created": created}, 201 if created else 200)


class ForgotHandler(AuthHandler):
    @endpoint("Send a password reset link if the account exists", body=EmailBody, response=Accepted, status=202,
              tags=TAGS)
    async def post(self) -> None:
        body = self.parse(EmailBody)
        await self.enforce_rate_limit(f"forgot:{body.email.lower()}", 3, 3600, "forgot")
        await self.accounts.forgot_password(body.email)
        self.reply({"status": "accepted"}, 202)


class ResetHandler(AuthHandler):
    @endpoint("Set a new password with a reset token; ends every session", body=ResetBody, status=204, tags=TAGS,
              errors=(422,))
    async def post(self) -> None:
        body = self.parse(ResetBody)
        await self.accounts.reset_password(body.token, body.password)
        self.no_content()


class VerifyEmailHandler(AuthHandler):
    @endpoint("Confirm the email address with the emailed token", body=TokenBody, status=204, tags=TAGS,
              errors=(422,))
    async def post(self) -> None:
        body = self.parse(TokenBody)
        await self.accounts.verify_email(body.token)
        self.no_content()


def routes(accounts: AccountService, sessions: SessionService, social: SocialService) -> list:
    deps = {"accounts": accounts, "sessions": sessions, "social": social}
    return [
        (r"/auth/signup", SignupHandler, deps),
        (r"/auth/login", LoginHandler, deps),
        (r"/auth/refresh", RefreshHandler, deps),
        (r"/auth/logout", LogoutHandler, deps),
        (r"/auth/social/(?P<provider>google|apple|facebook)", SocialHandler, deps),
        (r"/auth/password/forgot", ForgotHandler, deps),
        (r"/auth/password/reset", ResetHandler, deps),
        (r"/auth/email/verify", VerifyEmailHandler, deps),
    ]

