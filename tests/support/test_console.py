"""The agent console at /console in Debian's Chromium: an agent signs in, the console makes
and registers its device key with libsodium, a supervisor (pynacl) grants it the team key,
and the agent reads, in the browser, what a pynacl viewer encrypted and answers in a way
the viewer decrypts: the two libraries agree. Script in a message stays text, and the
console's state-changing calls refuse a cross-site request."""

from __future__ import annotations

import re
import secrets

import aiohttp
import httpx
import pytest
import socketio
from nacl.encoding import HexEncoder
from nacl.hash import blake2b
from playwright.async_api import Expect

from tests.helpers import PASSWORD, assert_error, make_staff, sign_in, signup
from tests.support.helpers import Device, b64, support_viewer, team_key, unb64

XSS_IMG = "<img src=x onerror=\"window.__pwned=1;alert('img')\">"
XSS_SCRIPT = "<script>window.__pwned=2;alert('script')</script>"
expect = Expect()
expect.set_options(timeout=15_000)  # ms, for a loaded 2-core machine; each wait ends when the page shows it


@pytest.mark.browser
async def test_an_agent_reads_and_answers_a_pynacl_viewer_in_the_browser(server, browser, screenshots) -> None:
    team = await team_key(server)
    agent = await make_staff(server, ["support_agent"])
    viewer = await support_viewer(server)
    await viewer.connect()
    context = await browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    async def on_dialog(dialog) -> None:
        problems.append(f"dialog: {dialog.message}")
        await dialog.dismiss()

    page.on("dialog", on_dialog)

    # Sign in through /login, then follow the staff home's link to the console.
    await page.goto("/admin")
    await page.fill("input[name=email]", agent["email"])
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/admin")
    await page.click("a[href='/console']")
    await page.wait_for_url("**/console")

    # The console made a key pair in the page and registered its public half; until a
    # supervisor grants the team key, it says so.
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-state", "waiting")
    await expect(page.locator("#setup-text")).to_contain_text("Waiting for a supervisor to grant the team key")
    await page.screenshot(path=str(screenshots / "console-waiting.png"))
    key_id = (await page.text_content("#device-key-id")).strip()
    devices = (await server.client.get(f"/api/v1/admin/support/users/{agent['id']}/keys",
                                       headers=team.supervisor.headers)).json()["items"]
    assert [d["key_id"] for d in devices] == [key_id]
    public_key = unb64(devices[0]["public_key"])
    fingerprint = blake2b(public_key, digest_size=8, encoder=HexEncoder).decode()
    assert (await page.text_content("#fingerprint")).replace(" ", "") == fingerprint  # what the agent reads out
    await team.grant(key_id, public_key)
    await expect(status).to_have_attribute("data-state", "live")
    presence = page.locator("#presence")
    await expect(presence).to_have_attribute("data-state", "available")

    # Not taking new conversations: the viewer's conversation waits in the queue.
    await page.uncheck("#available")
    await expect(presence).to_have_attribute("data-state", "away")
    subject = "Playback <b>fails</b> on my TV"
    conversation = await viewer.open(subject)
    cid = conversation["id"]
    assert (await viewer.call("support.join", {"conversation_id": cid}))["ok"] is True
    secret = f"My card ends {secrets.token_hex(4)}; the player says error 224003 — ça ne marche pas 📺"
    assert (await viewer.send(cid, secret))["seq"] == 1
    queued = page.locator(f"#queue button[data-id='{cid}']")
    await expect(queued).to_contain_text(subject)  # the markup shows as text
    await queued.click()
    messages = page.locator("#messages")
    await expect(messages).to_contain_text(secret)  # decrypted by libsodium in the page
    await expect(page.locator("#reply")).to_be_disabled()
    await page.click("#claim")
    await expect(page.locator(f"#mine button[data-id='{cid}']")).to_be_visible()
    await expect(page.locator("#reply")).to_be_enabled()
    await viewer.wait("support.read", lambda r: r["user_id"] == agent["id"] and r["seq"] >= 1)

    # Script in a message is shown as the characters it is; nothing runs.
    await viewer.send(cid, XSS_IMG)
    await viewer.send(cid, XSS_SCRIPT)
    await expect(messages).to_contain_text(XSS_SCRIPT)
    await expect(messages).to_contain_text(XSS_IMG)
    assert await page.locator("#messages img, #messages script").count() == 0

    # Typing both ways, then the reply: encrypted in the page, decrypted by pynacl.
    await viewer.call("support.typing", {"conversation_id": cid})
    await expect(page.locator("#typing")).to_have_text("The viewer is typing…")
    reply = f"Thanks! We reset your session {secrets.token_hex(4)} — réessayez 👍"
    await page.fill("#reply", reply)
    await viewer.wait("support.typing", lambda t: t["user_id"] == agent["id"])
    await page.press("#reply", "Enter")
    heard = await viewer.wait("support.message", lambda m: m["sender_id"] == agent["id"])
    assert heard["seq"] == 4
    assert await viewer.decrypt(heard) == reply
    own = page.locator("#messages li.own[data-seq='4']")
    await expect(own).to_contain_text(reply)
    await expect(own.locator(".receipt")).to_have_text("Delivered")
    await page.fill("#reply", "Anything else?")
    await page.click("#send")
    again = await viewer.wait("support.message", lambda m: m["seq"] == 5)
    assert await viewer.decrypt(again) == "Anything else?" and again["nonce"] != heard["nonce"]  # a fresh nonce each
    await viewer.call("support.read", {"conversation_id": cid, "seq": 4})
    await expect(own.locator(".receipt")).to_have_text("Read")
    await expect(page.locator("#read-state")).to_have_text("The viewer has read up to #4.")
    await expect(page.locator("#messages li.own[data-seq='5'] .receipt")).to_have_text("Delivered")

    await page.select_option("#status-select", "pending")
    assert (await viewer.wait("support.status"))["status"] == "pending"
    await page.screenshot(path=str(screenshots / "console.png"), full_page=True)

    assert await page.evaluate("window.__pwned") is None
    assert not problems, problems
    injected = await page.evaluate("""() => {
        const s = document.createElement('script');
        s.textContent = 'window.__pwned = 3';
        document.body.appendChild(s);
        return window.__pwned;
    }""")
    assert injected is None  # had markup slipped through, the page's CSP would still stop inline script
    assert any("Content Security Policy" in p for p in problems), problems
    problems.clear()

    # The device key stays with this browser: a reload needs no new grant.
    await page.reload()
    await expect(status).to_have_attribute("data-state", "live")
    assert (await page.text_content("#device-key-id")).strip() == key_id
    # A message to a conversation the agent is not looking at counts as unread until opened.
    mine = page.locator(f"#mine button[data-id='{cid}']")
    await expect(mine.locator(".unread")).to_have_count(0)
    await viewer.send(cid, "Still there?")
    await expect(mine.locator(".unread")).to_have_text("1")
    await mine.click()
    await expect(messages).to_contain_text("Still there?")
    await expect(mine.locator(".unread")).to_have_count(0)
    await viewer.wait("support.read", lambda r: r["user_id"] == agent["id"] and r["seq"] == 6)
    await expect(messages).to_contain_text(reply)
    await expect(messages).to_contain_text(secret)
    assert not problems, problems

    # A cross-site request carrying the agent's cookies but not the CSRF token is refused.
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    jar = "; ".join(f"{name}={value}" for name, value in cookies.items())
    forged = {"Cookie": jar, "Origin": "http://evil.example", "Content-Type": "application/json"}
    device_id = key_id.rsplit(":", 1)[1]
    attacker = b64(bytes(32))
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as outsider:
        for headers in (forged, {**forged, "X-XSRFToken": "2|00000000|" + "0" * 32 + "|1"}):
            refused = await outsider.put(f"/api/v1/me/keys/{device_id}", headers=headers,
                                         json={"public_key": attacker})
            assert_error(refused, 403, "csrf_failed")
        # the same request with the page's token is what the console itself sends
        token = await page.get_attribute("meta[name=csrf-token]", "content")
        allowed = await outsider.put("/api/v1/me/keys/second-browser", headers={**forged, "X-XSRFToken": token},
                                     json={"public_key": attacker})
        assert allowed.status_code == 200, allowed.text
    keys = (await server.client.get(f"/api/v1/admin/support/users/{agent['id']}/keys",
                                    headers=team.supervisor.headers)).json()["items"]
    assert {d["key_id"]: d["public_key"] for d in keys}[key_id] == devices[0]["public_key"]
    # The console's socket, which the cookie opens, opens for its own page and no other site.
    async with aiohttp.ClientSession() as http:
        for origin, opens in (("http://evil.example", False), (server.url, True)):
            client = socketio.AsyncClient(reconnection=False, http_session=http)
            try:
                await client.connect(server.url, headers={"Cookie": jar, "Origin": origin}, namespaces=["/support"],
                                     transports=["websocket"], wait_timeout=5)
            except socketio.exceptions.ConnectionError:
                pass
            assert client.connected is opens, origin
            await client.disconnect()
    await viewer.close()
    await context.close()


@pytest.mark.browser
async def test_an_agent_transfers_a_conversation_and_forgets_the_browser_key(server, browser) -> None:
    team = await team_key(server)
    agent = await make_staff(server, ["support_agent"])
    colleague = Device(server, await make_staff(server, ["support_agent"]))
    await colleague.register()
    viewer = await support_viewer(server)
    context = await browser.new_context(base_url=server.url)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    await page.goto("/login?next=/console")
    await page.fill("input[name=email]", agent["email"])
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console")
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-state", "waiting")
    key_id = (await page.text_content("#device-key-id")).strip()
    devices = (await server.client.get(f"/api/v1/admin/support/users/{agent['id']}/keys",
                                       headers=team.supervisor.headers)).json()["items"]
    await team.grant(key_id, unb64(devices[0]["public_key"]))
    await expect(status).to_have_attribute("data-state", "live")

    # The colleague is online but takes nothing new, so the conversation comes to this console.
    await colleague.connect()
    assert (await colleague.call("support.presence", {"available": False}))["ok"] is True
    cid = (await viewer.open("Audio out of sync"))["id"]
    mine = page.locator(f"#mine button[data-id='{cid}']")
    await mine.click()
    transfer_to = page.locator("#transfer-to")
    await transfer_to.focus()  # the list of agents is fetched again when it is opened
    await expect(transfer_to.locator(f"option[value='{colleague.user_id}']")).to_contain_text("online · 0/5")
    await transfer_to.select_option(colleague.user_id)
    await page.click("#transfer-button")
    await expect(mine).to_have_count(0)
    await expect(page.locator("#empty")).to_have_text("That conversation is now with another agent.")
    moved = await colleague.wait("support.queue", lambda q: q["conversation"]["id"] == cid
                                 and q["conversation"]["assignee_id"] == colleague.user_id)
    assert moved["conversation"]["queued"] is False
    assert (await colleague.call("support.join", {"conversation_id": cid}))["ok"] is True

    # Forgetting the key: the server drops the public key and the grant, the browser its
    # private key; the next visit makes a new key that needs a new grant.
    await page.click("#forget-key")
    await expect(status).to_have_attribute("data-state", "forgotten")
    keys = await server.client.get(f"/api/v1/admin/support/users/{agent['id']}/keys", headers=team.supervisor.headers)
    assert keys.json()["items"] == []
    await page.reload()
    await expect(status).to_have_attribute("data-state", "waiting")
    fresh = (await page.text_content("#device-key-id")).strip()
    assert fresh != key_id and fresh.startswith(f"u:{agent['id']}:console-")
    assert not problems, problems
    await colleague.close()
    await context.close()


async def test_the_console_page_is_for_support_agents(server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10, follow_redirects=False) as anonymous:
        resp = await anonymous.get("/console")
        assert resp.status_code == 302 and resp.headers["location"] == "/login?next=%2Fconsole"
    for roles, status in ((["content_manager"], 403), (["admin"], 403), (["support_agent"], 200),
                          (["super_admin"], 200)):
        staff = await make_staff(server, roles)
        async with httpx.AsyncClient(base_url=server.url, timeout=10, follow_redirects=False) as client:
            assert (await sign_in(client, staff["email"])).status_code == 302
            page = await client.get("/console")
            home = await client.get("/admin")
        assert page.status_code == status, (roles, page.text)
        assert ('href="/console"' in home.text) is (status == 200), roles  # linked only for those it opens to
        if status == 403:
            assert_error(page, 403, "forbidden")
            continue
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "'unsafe-eval'" not in csp, csp
        assert "<script>" not in page.text  # scripts come as files only
        scripts = re.findall(r'<script src="([^"]+)"', page.text)
        for src in scripts:
            served = await server.client.get(src)
            assert served.status_code == 200 and "javascript" in served.headers["content-type"], src
    viewer = await signup(server.client)
    refused = await server.client.get("/console", headers=viewer["headers"])
    assert_error(refused, 403, "forbidden")
