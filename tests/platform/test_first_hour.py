"""A newcomer's first hour in a real browser (Debian's Chromium, Playwright): the landing
page, the interactive API docs, the staff sign-in and pages, and the player playing a
stream from the manifest_url the API returns, to its end, with no console error (a
missing favicon included). Each page's screenshot is saved under
var/test-artifacts/screenshots/ for a person to look at."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.helpers import PASSWORD, make_staff
from tests.media.helpers import playable_title

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]


async def test_a_first_hour_without_a_stumble(server, browser, clip, screenshots) -> None:
    admin = await make_staff(server, ["super_admin"])
    _, _, started = await playable_title(server, clip)
    context = await browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"{page.url}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"{page.url}: {exc}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    async def shot(name: str, *, full_page: bool = True) -> None:
        await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=full_page)

    await page.goto("/")
    for href in ("/docs", "/login"):
        await expect(page.locator(f"a[href='{href}']")).to_have_count(1)
    assert "README" in await page.inner_text("main")
    assert (await page.request.get("/favicon.ico")).status == 200  # for clients that ask for it by that name
    await shot("landing")

    await page.goto("/docs")
    await expect(page.locator(".opblock-tag").first).to_be_visible(timeout=20_000)
    assert await page.locator(".opblock-tag").count() >= 10  # the tags of the real document, collapsed
    await page.locator(".opblock-tag", has_text="accounts").first.click()
    await expect(page.locator(".opblock-summary-path", has_text="/api/v1/auth/login").first).to_be_visible()
    await page.locator(".opblock-tag", has_text="accounts").first.click()  # closed again
    sections = page.locator(".opblock-tag-section")
    shown = 0
    for i in range(await sections.count()):  # one tag open at a time, as a reader browses
        section = sections.nth(i)
        await section.locator(".opblock-tag").click()
        await expect(section.locator(".opblock").first).to_be_visible()
        shown += await section.locator(".opblock").count()
        await section.locator(".opblock-tag").click()
    document = await (await page.request.get("/api/v1/openapi.json")).json()
    listed = sum(len(op.get("tags") or ["default"]) for ops in document["paths"].values() for op in ops.values())
    assert shown == listed  # every operation can be read, under each of its tags
    await shot("docs", full_page=False)  # the whole document is some 13,000 pixels tall

    await page.goto("/login")
    await shot("login")
    await page.fill("input[name=email]", admin["email"])
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/admin")
    await shot("admin")
    for href in await page.locator("main a").evaluate_all("links => links.map(a => a.getAttribute('href'))"):
        assert (await page.request.get(href)).status == 200, href  # the staff home links only to real pages
    await page.goto("/ops")
    await page.wait_for_selector("#status[data-state=live]", timeout=10_000)
    await shot("ops")

    manifest_url = started["manifest_url"]
    assert manifest_url.startswith("http://127.0.0.1:")  # absolute, as the API gives it
    await page.goto("/player?src=" + manifest_url.replace("?", "%3F"))
    await page.wait_for_selector("#player-status[data-state=playing]", timeout=30_000)
    video, card = await page.locator("video").bounding_box(), await page.locator("main").bounding_box()
    assert video["x"] >= card["x"] and video["x"] + video["width"] <= card["x"] + card["width"], (video, card)
    await shot("player-playing")
    await page.wait_for_selector("#player-status[data-state=ended]", timeout=30_000)
    await expect(page.locator("#player-status")).to_have_text("Ended")
    await shot("player-ended")

    other = manifest_url.replace("http://127.0.0.1:", "http://localhost:")
    await page.goto("/player?src=" + other)
    await expect(page.locator("#player-status[data-state=error]")).to_have_text("No playable source.")
    await context.close()
    assert not problems, problems
