"""The staff pages' sign-in: one form, a cookie session, CSRF on every form post.

Staff sign in once here for `/admin`, `/console` and `/ops`. The cookie holds the signed
session id (HttpOnly, SameSite=Strict, Secure behind TLS); the session is the same kind
the apps get, so revoking it or suspending the user ends it at once.
"""

from __future__ import annotations

import urllib.parse

from pydantic import BaseModel, Field

from handlers.base import VENDOR, StaticHandler, endpoint
from handlers.routing import PageHandler
from server.core import errors
from server.identity.accounts import AccountService
from server.identity.sessions import SESSION_COOKIE, SessionService

# (path, label, the permission that opens it): the staff home links the pages its reader may open.
STAFF_PAGES = (("/admin", "Staff portal", "staff.portal"), ("/console", "Support console", "support.handle"),
               ("/ops", "Live operations", "ops.view"))
DEFAULT_NEXT = "/admin"


def safe_next(target: str | None) -> str:
    """Only our own staff pages: no scheme, no host, no `//` or backslash tricks (open redirect)."""
    if not target:
        return DEFAULT_NEXT
    decoded = urllib.parse.unquote(target)
    parts = urllib.parse.urlsplit(decoded)
    if parts.scheme or parts.netloc or "\\" in decoded or not decoded.startswith("/") or decoded.startswith("//"):
        return DEFAULT_NEXT
    if any(ch in decoded for ch in "\r\n\t") or not any(
        parts.path == p or parts.path.startswith(p + "/") for p, _, _ in STAFF_PAGES
    ):
        return DEFAULT_NEXT
    return urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))


class LoginQuery(BaseModel):
    next: str | None = Field(default=None, description="the staff page to open after signing in")


class XsrfForm(BaseModel):
    xsrf: str | None = Field(default=None, alias="_xsrf", description="the `_xsrf` cookie's value (or send it "
                                                                       "as the X-XSRFToken header)")


class LoginForm(XsrfForm):
    email: str
    password: str
    otp: str | None = Field(default=None, description="the authenticator code, when 2FA is on")
    next: str | None = Field(default=None, description="the staff page to open after signing in")


class LoginPage(PageHandler):
    def initialize(self, accounts: AccountService, sessions: SessionService) -> None:
        self.accounts = accounts
        self.sessions = sessions

    @endpoint("Staff sign-in form", query=LoginQuery, tags=("pages",), content_type="text/html")
    def get(self) -> None:
        self.render("login.html", error=None, email="", next_url=safe_next(self.get_query_argument("next", None)))

    @endpoint("Staff sign-in: sets the session cookie and redirects to a staff page (a refused sign-in renders "
              "the form again, with 401 or 403)", body=LoginForm, status=302, tags=("pages",), errors=(401, 403),
              content_type="text/html", body_types=("application/x-www-form-urlencoded",))
    async def post(self) -> None:
        await self.enforce_rate_limit(f"auth:{self.client_ip}", self.platform.settings.rate_limit_auth, 60, "auth")
        email, next_url = self.form("email", 320), safe_next(self.form("next"))
        try:
            pair = await self.accounts.login(email, self.form("password"), self.form("otp", 32) or None,
                                             self.client_info())
        except (errors.Unauthorized, errors.Forbidden) as exc:
            self.set_status(exc.status)
            self.render("login.html", error=exc.message, email=email, next_url=next_url)
            return
        principal = await self.sessions.authenticate(pair.access_token, self.client_ip)
        if not principal.can("staff.portal"):
            await self.sessions.revoke_session(pair.session_id, reason="not_staff")
            self.set_status(403)
            self.render("login.html", error="This sign-in is for staff only.", email=email, next_url=next_url)
            return
        self.set_signed_cookie(
            SESSION_COOKIE, pair.session_id, expires_days=1, httponly=True, samesite="Strict",
            secure=self.request.protocol == "https", path="/",
        )
        self.redirect(next_url)


class LogoutPage(PageHandler):
    def initialize(self, sessions: SessionService) -> None:
        self.sessions = sessions

    @endpoint("Staff sign-out: ends the session and redirects to /login", body=XsrfForm, status=302, auth=True,
              tags=("pages",), body_types=("application/x-www-form-urlencoded",))
    async def post(self) -> None:
        await self.sessions.revoke_session(self.user.session_id, reason="logout")
        self.clear_cookie(SESSION_COOKIE, path="/")
        self.redirect("/login")


class StaffHome(PageHandler):
    def initialize(self, accounts: AccountService) -> None:
        self.accounts = accounts

    @endpoint("Staff landing page", permission="staff.portal", tags=("pages",), content_type="text/html")
    async def get(self) -> None:
        account = await self.accounts.view(await self.accounts.get(self.user.user_id))
        pages = [(path, label) for path, label, permission in STAFF_PAGES if self.user.can(permission)]
        self.render("staff_home.html", account=account, pages=pages)


class OpsPage(PageHandler):
    @endpoint("Live connection metrics (staff who run the service)", permission="ops.view", tags=("pages",),
              content_type="text/html")
    def get(self) -> None:
        self.render("ops.html")


def routes(accounts: AccountService, sessions: SessionService) -> list:
    return [
        (r"/login", LoginPage, {"accounts": accounts, "sessions": sessions}),
        (r"/logout", LogoutPage, {"sessions": sessions}),
        (r"/admin", StaffHome, {"accounts": accounts}),
        (r"/ops", OpsPage),
    ]


def vendor_routes() -> list:
    return [(r"/(socket\.io\.min\.js)", StaticHandler, {"path": str(VENDOR / "socket.io-client" / "dist")})]
