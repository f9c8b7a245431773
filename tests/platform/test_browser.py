"""Staff pages in a real browser: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.helpers import PASSWORD, make_staff, signup

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]


async def staff_page(browser, served, email: str):
    context = await browser.new_context(base_url=served.url)
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await page.goto("/login?next=/ops")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    return page, problems


async def test_ops_dashboard_shows_live_connections(server, browser) -> None:
    admin = await make_staff(server, ["admin"])
    viewers = [await signup(server.client) for _ in range(2)]
    import socketio

    sockets = []
    for viewer in viewers:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(server.url, auth={"token": viewer["access_token"]}, transports=["websocket"])
        sockets.append(client)
    page, problems = await staff_page(browser, server, admin["email"])
    await page.wait_for_url("**/ops")
    await page.wait_for_selector("#status[data-state=live]", timeout=10_000)
    await expect(page.locator("#total")).to_have_text("3", timeout=10_000)
    assert await page.text_content("#process-count") == "1"
    rows = await page.locator("#namespaces tr").all_inner_texts()
    assert any(r.startswith("/\t2") or r.split() == ["/", "2"] for r in rows), rows
    # One more viewer connects: the page updates by itself within about a second.
    extra = socketio.AsyncClient(reconnection=False)
    await extra.connect(server.url, auth={"token": viewers[0]["access_token"]}, transports=["websocket"])
    sockets.append(extra)
    await expect(page.locator("#total")).to_have_text("4", timeout=5_000)
    await page.screenshot(path=str(server.runtime.settings.data_dir / "ops.png"))
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    for client in sockets:
        await client.disconnect()


async def test_ops_page_refuses_non_admin_staff(server, browser) -> None:
    agent = await make_staff(server, ["support_agent"])
    page, _ = await staff_page(browser, server, agent["email"])
    await page.wait_for_load_state()
    assert "forbidden" in (await page.content())


async def test_inline_script_is_blocked_by_csp(server, browser) -> None:
    """The pages' CSP would stop an injected inline script (defence in depth against XSS)."""
    admin = await make_staff(server, ["admin"])
    page, _ = await staff_page(browser, server, admin["email"])
    await page.wait_for_url("**/ops")
    executed = await page.evaluate("""() => {
        window.__pwned = false;
        const s = document.createElement('script');
        s.textContent = 'window.__pwned = true';
        document.body.appendChild(s);
        return window.__pwned;
    }""")
    assert executed is False


async def test_hls_playback_in_the_browser_advances(start_server, browser, clip) -> None:
    """A transcoded upload plays in Chromium through hls.js from signed URLs only."""
    from urllib.parse import urlsplit

    from tests.media.helpers import playable_title

    served = await start_server()
    _, _, play = await playable_title(served, clip, plan_id="standard")
    manifest = urlsplit(play["manifest_url"]).path
    context = await browser.new_context(base_url=served.url)
    page = await context.new_page()
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    from urllib.parse import urlencode

    await page.goto("/player?" + urlencode({"src": manifest}))
    status = page.locator("#player-status")
    await expect(status).to_have_attribute("data-state", "playing", timeout=20_000)
    await expect(status).to_have_attribute("data-levels", "3")
    first = float(await status.get_attribute("data-time") or 0)
    await page.wait_for_timeout(1500)
    later = float(await status.get_attribute("data-time") or 0)
    assert later > first + 0.5, (first, later)
    media = [u for u in requests if "/media/" in u]
    assert any(u.split("?")[0].endswith(".ts") for u in media)
    token = manifest.split("/")[2]
    assert all(u.split("/media/")[1].startswith(token + "/") for u in media)  # every URL carries the token
