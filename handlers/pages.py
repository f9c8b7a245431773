"""The staff pages' sign-in: one form, a cookie session, CSRF on every form post.

Staff sign in once here for `/admin`, `/console` and `/ops`. The cookie holds the signed
session id (HttpOnly, SameSite=Strict, Secure behind TLS); the session is the same kind
the apps get, so revoking it or suspending the user ends it at once.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import tornado.web

from handlers.base import PAGE_CSP, SESSION_COOKIE, BaseHandler, endpoint, stamp_request
from server import errors
from server.accounts import AccountService
from server.sessions import SessionService

VENDOR = Path(__file__).resolve().parent.parent / "web" / "node_modules"
STAFF_PAGES = (("/admin", "Staff portal"), ("/console", "Support console"), ("/ops", "Live operations"))
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
        parts.path == p or parts.path.startswith(p + "/") for p, _ in STAFF_PAGES
    ):
        return DEFAULT_NEXT
    return urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))


class PageHandler(BaseHandler):
    """HTML pages: page CSP, form bodies parsed by Tornado, XSRF on every post."""

    csp = PAGE_CSP
    xsrf_always = True
    _stream_request_body = False  # forms are small; Tornado parses them (and _xsrf) for us

    def get_template_path(self) -> str:
        return self.application.settings["web_templates"]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, errors.Unauthorized) and self.request.method == "GET":
            self.redirect("/login?next=" + urllib.parse.quote(self.request.uri or DEFAULT_NEXT, safe=""))
            return
        super().write_error(status_code, **kwargs)

    def uses_cookie_auth(self) -> bool:
        return "Authorization" not in self.request.headers

    def form(self, name: str, limit: int = 1024) -> str:
        return self.get_body_argument(name, "", strip=True)[:limit]


class LoginPage(PageHandler):
    def initialize(self, accounts: AccountService, sessions: SessionService) -> None:
        self.accounts = accounts
        self.sessions = sessions

    @endpoint("Staff sign-in form", tags=("pages",))
    def get(self) -> None:
        self.render("login.html", error=None, email="", next_url=safe_next(self.get_query_argument("next", None)))

    @endpoint("Staff sign-in: sets the session cookie and redirects to a staff page", tags=("pages",),
              errors=(401, 403))
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

    @endpoint("Staff sign-out", auth=True, tags=("pages",))
    async def post(self) -> None:
        await self.sessions.revoke_session(self.user.session_id, reason="logout")
        self.clear_cookie(SESSION_COOKIE, path="/")
        self.redirect("/login")


class StaffHome(PageHandler):
    def initialize(self, accounts: AccountService) -> None:
        self.accounts = accounts

    @endpoint("Staff landing page", permission="staff.portal", tags=("pages",))
    async def get(self) -> None:
        account = await self.accounts.view(await self.accounts.get(self.user.user_id))
        self.render("staff_home.html", account=account, pages=STAFF_PAGES)


class OpsPage(PageHandler):
    @endpoint("Live connection metrics (staff who run the service)", permission="ops.view", tags=("pages",))
    def get(self) -> None:
        self.render("ops.html")


class PlayerPage(PageHandler):
    """A web player for a signed manifest of this server; the token in the URL is the
    authorization, so the page itself needs no sign-in."""

    csp = PAGE_CSP.replace("img-src 'self' data:;", "img-src 'self' data:; media-src 'self' blob:;")

    @endpoint("Web player for a signed manifest (?src=/media/...)", tags=("pages",))
    def get(self) -> None:
        src = self.get_query_argument("src", "")
        parts = urllib.parse.urlsplit(src)
        if parts.scheme or parts.netloc or not parts.path.startswith("/media/") or ".." in parts.path:
            src = ""
        self.render("player.html", src=src)


class StaticHandler(tornado.web.StaticFileHandler):
    """Static assets with the same security headers as everything else."""

    def set_default_headers(self) -> None:
        stamp_request(self, PAGE_CSP)
        self.clear_header("Cache-Control")


def routes(accounts: AccountService, sessions: SessionService) -> list:
    return [
        (r"/login", LoginPage, {"accounts": accounts, "sessions": sessions}),
        (r"/logout", LogoutPage, {"sessions": sessions}),
        (r"/admin", StaffHome, {"accounts": accounts}),
        (r"/ops", OpsPage),
        (r"/player", PlayerPage),
        (r"/vendor/(socket\.io\.min\.js)", StaticHandler, {"path": str(VENDOR / "socket.io-client" / "dist")}),
        (r"/vendor/(hls\.min\.js)", StaticHandler, {"path": str(VENDOR / "hls.js" / "dist")}),
    ]
