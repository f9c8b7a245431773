"""The agent console at `/console`: a page that does all of the support chat's crypto in
the browser (docs/support-chat-crypto.md). The server sends the page, the CSRF token and
the agent's id (and whether they may supervise: create the team key, grant it to
agents' devices); the device key, the team key and every plaintext stay in the page."""

from __future__ import annotations

from handlers.base import PAGE_CSP, VENDOR, StaticHandler, endpoint
from handlers.routing import PageHandler


class ConsolePage(PageHandler):
    """Signed-in staff who handle support (agents; super admins hold every permission).

    The page's CSP adds only `'wasm-unsafe-eval'`: libsodium compiles its WebAssembly, and
    when the CSP refuses that, its pure-JavaScript fallback fails to start (0.8.4, tried).
    It allows compiling WebAssembly, not `eval` or inline script."""

    csp = PAGE_CSP.replace("script-src 'self';", "script-src 'self' 'wasm-unsafe-eval';")

    @endpoint("Support agent console (encrypted chat, decrypted in the browser)", permission="support.handle",
              tags=("pages",), content_type="text/html")
    def get(self) -> None:
        self.render("console.html", user_id=self.user.user_id, csrf_token=self.xsrf_token.decode(),
                    supervisor=self.user.can("support.supervise"))


def routes() -> list:
    return [(r"/console", ConsolePage)]


def vendor_routes() -> list:
    """libsodium's plain-script builds: the raw library (WebAssembly) sets `libsodium`, the
    wrappers then set `sodium`."""
    return [(rf"/({name}\.js)", StaticHandler, {"path": str(VENDOR / name / "dist" / "modules")})
            for name in ("libsodium", "libsodium-wrappers")]
