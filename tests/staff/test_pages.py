"""Staff sign-in by form: cookie session, CSRF, safe redirects, page security headers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from handlers.staff.pages import safe_next
from tests.helpers import PASSWORD, assert_error, make_staff, raw_get, sign_in, signup

pytestmark = pytest.mark.asyncio


async def browser(served) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=served.url, timeout=10, follow_redirects=False)


async def test_staff_sign_in_sets_a_hardened_cookie(server) -> None:
    staff = await make_staff(server, ["support_agent"])
    async with await browser(server) as client:
        resp = await sign_in(client, staff["email"], next_url="/console")
        assert resp.status_code == 302 and resp.headers["location"] == "/console"
        cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("nameless_session="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        home = await client.get("/admin")
        assert home.status_code == 200 and staff["email"] in home.text
        assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
        assert "script-src 'self'" in home.headers["content-security-policy"]
        assert home.headers["x-frame-options"] == "DENY"
        # The cookie also authenticates the API for the staff pages' own scripts.
        api = await client.get("/api/v1/admin/users")
        assert api.status_code == 200


async def test_form_posts_need_the_csrf_token(server) -> None:
    staff = await make_staff(server, ["admin"])
    async with await browser(server) as client:
        await client.get("/login")
        forged = await client.post("/login", data={"email": staff["email"], "password": PASSWORD})
        assert_error(forged, 403, "csrf_failed")
        assert (await sign_in(client, staff["email"])).status_code == 302
        # A signed-in cookie session cannot change state without the token (cross-site forgery).
        no_token = await client.post("/logout")
        assert_error(no_token, 403, "csrf_failed")
        api_forgery = await client.put("/api/v1/admin/users/000000000000000000000000/roles", json={"roles": []})
        assert_error(api_forgery, 403, "csrf_failed")
        token = client.cookies["_xsrf"]
        out = await client.post("/logout", data={"_xsrf": token})
        assert out.status_code == 302 and out.headers["location"] == "/login"
        after = await client.get("/admin")
        assert after.status_code == 302 and after.headers["location"].startswith("/login?next=")


async def test_viewers_cannot_use_the_staff_sign_in(server) -> None:
    viewer = await signup(server.client)
    async with await browser(server) as client:
        resp = await sign_in(client, viewer["email"])
        assert resp.status_code == 403 and "staff only" in resp.text
        assert "nameless_session" not in client.cookies


async def test_wrong_password_and_escaping(server) -> None:
    async with await browser(server) as client:
        resp = await sign_in(client, '"><script>alert(1)</script>@example.com', "wrong")
        assert resp.status_code in (400, 401)
        assert "<script>alert(1)</script>" not in resp.text


async def test_suspended_staff_cookie_stops_working(server) -> None:
    admin = await make_staff(server, ["admin"])
    agent = await make_staff(server, ["support_agent"])
    async with await browser(server) as client:
        await sign_in(client, agent["email"])
        assert (await client.get("/admin")).status_code == 200
        await server.client.post(f"/api/v1/admin/users/{agent['id']}/suspend", json={"reason": "left"},
                                 headers=admin["headers"])
        assert (await client.get("/admin")).status_code == 302
        assert_error(await client.get("/api/v1/admin/users"), 401, "session_revoked")


async def test_tampered_cookie_is_refused(server) -> None:
    agent = await make_staff(server, ["support_agent"])
    async with await browser(server) as client:
        await sign_in(client, agent["email"])
        value = client.cookies["nameless_session"]
        client.cookies.set("nameless_session", value[:-3] + "AAA")
        assert_error(await client.get("/api/v1/admin/users"), 401, "not_authenticated")


@pytest.mark.parametrize("target", [
    "https://evil.example/phish", "//evil.example", "/\\evil.example", "\\\\evil.example", "http:/evil",
    "%2F%2Fevil.example", "/admin\r\nSet-Cookie: x=1", "javascript:alert(1)", "/api/v1/me", "/login",
    "", None,
])
async def test_open_redirects_are_refused(target) -> None:
    assert safe_next(target) == "/admin"


async def test_redirect_target_is_kept_for_staff_pages(server) -> None:
    assert safe_next("/ops") == "/ops"
    assert safe_next("/console/queue?x=1") == "/console/queue?x=1"
    agent = await make_staff(server, ["support_agent"])
    async with await browser(server) as client:
        resp = await sign_in(client, agent["email"], next_url="https://evil.example/")
        assert resp.status_code == 302 and resp.headers["location"] == "/admin"


async def test_static_assets_carry_security_headers(server) -> None:
    resp = await server.client.get("/static/style.css")
    assert resp.status_code == 200 and resp.headers["x-frame-options"] == "DENY"


ROOT = Path(__file__).resolve().parents[2]
UP = "%2e%2e/"
OUTSIDE_THE_ROOTS = {  # a file outside every static root: the paths that aim at it
    ROOT / "config" / "settings.py": [
        "/static/../../config/settings.py", "/static/./../../config/settings.py",
        f"/static/{UP}{UP}config/settings.py", "/static/%2E%2E/%2E%2E/config/settings.py",
        "/static/..%2f..%2fconfig%2fsettings.py", "/static/%2e%2e%2f%2e%2e%2fconfig%2fsettings.py",
        "/static/..\\..\\config\\settings.py", "/static/..%5c..%5cconfig%5csettings.py",
        "/static/%252e%252e/%252e%252e/config/settings.py", "/static/....//....//config/settings.py",
        "/static/style.css%00/../../../config/settings.py", "/static/..;/..;/config/settings.py",
        f"/vendor/{UP}{UP}config/settings.py", f"/vendor/swagger-ui/{UP * 4}config/settings.py",
        "/vendor/hls.min.js/../../../config/settings.py",
    ],
    ROOT / "web" / "templates" / "login.html": ["/static/../templates/login.html", f"/static/{UP}templates/login.html"],
    Path("/etc/passwd"): ["/static//etc/passwd", "/static/%2fetc%2fpasswd", f"/static/{UP * 12}etc/passwd",
                          f"/vendor/{UP * 12}etc/passwd"],
}


async def test_no_spelling_of_a_path_reads_a_file_outside_the_static_roots(server) -> None:
    """Every spelling is sent exactly as written (httpx would resolve the dots itself); every
    reply is a refusal, and none carries any line of the file it aimed at."""
    checked = 0
    for target, paths in OUTSIDE_THE_ROOTS.items():
        lines = [line for line in target.read_bytes().splitlines() if len(line.strip()) >= 16]
        assert lines, target
        for path in paths:
            status, body = await raw_get(server, path)
            assert status in (403, 404), (path, status, body[:200])
            assert not any(line in body for line in lines), (path, body[:200])
            checked += 1
    assert checked == 21
    status, body = await raw_get(server, f"/static/{UP}static/style.css")  # dots that stay inside the root
    assert status == 200 and body == (ROOT / "web" / "static" / "style.css").read_bytes()
