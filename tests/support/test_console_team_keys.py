"""The supervisor's side of the console, from a fresh deployment: the first super admin
creates the team key in the browser (the server only ever sees its public half and copies
sealed to devices), then grants it from the "Team keys" panel to a waiting agent's
console after comparing the fingerprint the agent's page shows; the agent then reads and
answers a pynacl viewer."""

from __future__ import annotations

import secrets

import pytest
from nacl.encoding import HexEncoder
from nacl.hash import blake2b
from nacl.public import PrivateKey, SealedBox
from playwright.async_api import Expect

from tests.helpers import PASSWORD, assert_error, make_staff
from tests.support.helpers import Device, b64, grant_path, support_viewer, team_key, unb64

expect = Expect()
expect.set_options(timeout=15_000)  # ms, for a loaded 2-core machine; each wait ends when the page shows it


async def open_console(browser, server, who: dict, problems: list[str]):
    context = await browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("console", lambda msg: problems.append(f"{who['email']} console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(f"{who['email']} page error: {exc}"))
    page.on("response", lambda r: problems.append(f"{who['email']} {r.status} {r.url}") if r.status >= 400 else None)
    await page.goto("/login?next=/console")
    await page.fill("input[name=email]", who["email"])
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console")
    return context, page


@pytest.mark.browser
async def test_a_super_admin_creates_the_team_key_and_grants_an_agent_from_the_console(server, browser,
                                                                                        screenshots) -> None:
    boss = await make_staff(server, ["super_admin"])
    agent = await make_staff(server, ["support_agent"])
    problems: list[str] = []

    # A fresh deployment: no team key, so the supervisor's console offers to make one.
    boss_context, boss_page = await open_console(browser, server, boss, problems)
    boss_status = boss_page.locator("#status")
    await expect(boss_status).to_have_attribute("data-state", "no-team-key")
    await expect(boss_page.locator("#setup-text")).to_contain_text("Support has no team key yet")
    await boss_page.screenshot(path=str(screenshots / "console-no-team-key.png"))
    await boss_page.click("#create-team-key")
    await expect(boss_status).to_have_attribute("data-state", "live")
    team = (await server.client.get("/api/v1/support/team-key", headers=boss["headers"])).json()
    assert team["key_id"] == "team:1" and team["active"] is True
    # The team private key went to the server only sealed, to the supervisor's own device.
    boss_key_id = (await boss_page.text_content("#device-key-id")).strip()
    grants = (await server.client.get("/api/v1/support/team-keys/grants", headers=boss["headers"])).json()["items"]
    assert [(g["team_key_id"], g["device_key_id"]) for g in grants] == [("team:1", boss_key_id)]
    assert len(unb64(grants[0]["sealed_private_key"])) == 80
    # The supervisor takes no conversations here, so the viewer's goes to the agent.
    await boss_page.uncheck("#available")
    await expect(boss_page.locator("#presence")).to_have_attribute("data-state", "away")

    panel = boss_page.locator("#team-panel")
    await expect(panel).to_be_visible()  # opened after creating the key: agents wait for their grants
    team_print = blake2b(unb64(team["public_key"]), digest_size=8, encoder=HexEncoder).decode()
    assert (await boss_page.text_content("#team-fingerprint")).replace(" ", "") == team_print
    own_row = boss_page.locator(f"#holders tr[data-key-id='{boss_key_id}']")
    await expect(own_row.locator(".badge")).to_have_text("granted")
    await expect(panel).to_contain_text(agent["email"])
    await expect(panel).to_contain_text("No console key yet")

    # The agent signs in and waits; the panel shows the agent's new device without a grant.
    agent_context, agent_page = await open_console(browser, server, agent, problems)
    agent_status = agent_page.locator("#status")
    await expect(agent_status).to_have_attribute("data-state", "waiting")
    await expect(agent_page.locator("#setup-text")).to_contain_text("Waiting for a supervisor to grant the team key")
    agent_key_id = (await agent_page.text_content("#device-key-id")).strip()
    agent_print = (await agent_page.text_content("#fingerprint")).strip()  # what the agent reads out
    row = boss_page.locator(f"#holders tr[data-key-id='{agent_key_id}']")
    await expect(row.locator(".badge")).to_have_text("no grant")  # the panel polls while open
    assert (await row.locator(".fingerprint").text_content()).strip() == agent_print
    await expect(panel).not_to_contain_text("No console key yet")
    await panel.screenshot(path=str(screenshots / "console-team-keys.png"))

    # Grant, confirm against the same fingerprint, and the agent's console opens its grant.
    await row.locator("button.grant").click()
    await expect(row.locator(".grant-confirm")).to_contain_text(f"Their console shows {agent_print}?")
    await panel.screenshot(path=str(screenshots / "console-team-keys-confirm.png"))
    await row.locator("button.confirm-grant").click()
    await expect(row.locator(".badge")).to_have_text("granted")
    await expect(row.locator("button")).to_have_count(0)
    await panel.screenshot(path=str(screenshots / "console-team-keys-granted.png"))
    await expect(agent_status).to_have_attribute("data-state", "live")
    await expect(agent_page.locator("#team-toggle")).to_be_hidden()  # agents do not supervise

    # The agent's console lists the queue and reads and answers what a pynacl viewer wrote.
    await agent_page.uncheck("#available")
    await expect(agent_page.locator("#presence")).to_have_attribute("data-state", "away")
    viewer = await support_viewer(server)
    await viewer.connect()
    cid = (await viewer.open("Cannot log in on my TV"))["id"]
    assert (await viewer.call("support.join", {"conversation_id": cid}))["ok"] is True
    secret = f"My code is {secrets.token_hex(4)} — ça ne marche pas"
    assert (await viewer.send(cid, secret))["seq"] == 1
    queued = agent_page.locator(f"#queue button[data-id='{cid}']")
    await expect(queued).to_contain_text("Cannot log in on my TV")
    await queued.click()
    await expect(agent_page.locator("#messages")).to_contain_text(secret)
    await agent_page.click("#claim")
    await expect(agent_page.locator("#reply")).to_be_enabled()
    reply = f"Try code {secrets.token_hex(3)} 👍"
    await agent_page.fill("#reply", reply)
    await agent_page.press("#reply", "Enter")
    heard = await viewer.wait("support.message", lambda m: m["sender_id"] == agent["id"])
    assert await viewer.decrypt(heard) == reply
    assert not problems, problems
    await viewer.close()
    await agent_context.close()
    await boss_context.close()


@pytest.mark.browser
async def test_a_supervisor_whose_console_lacks_the_existing_team_key_waits_for_another(server, browser) -> None:
    team = await team_key(server)  # made by another supervisor (pynacl)
    boss = await make_staff(server, ["super_admin"])
    problems: list[str] = []
    context, page = await open_console(browser, server, boss, problems)
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-state", "waiting")
    await expect(page.locator("#setup-text")).to_contain_text("only another supervisor whose console holds it")
    await expect(page.locator("#create-team-key")).to_be_hidden()  # no second team key by accident
    key_id = (await page.text_content("#device-key-id")).strip()
    device = (await server.client.get(f"/api/v1/admin/support/users/{boss['id']}/keys",
                                      headers=team.supervisor.headers)).json()["items"][0]
    await team.grant(key_id, unb64(device["public_key"]))
    await expect(status).to_have_attribute("data-state", "live")
    await page.click("#team-toggle")
    row = page.locator(f"#holders tr[data-key-id='{key_id}']")
    await expect(row.locator(".badge")).to_have_text("granted")
    keys = (await server.client.get("/api/v1/admin/support/team-keys", headers=boss["headers"])).json()["items"]
    assert [k["key_id"] for k in keys] == [team.key_id]
    assert not problems, problems
    await context.close()


@pytest.mark.browser
async def test_a_team_key_whose_first_grant_failed_is_sealed_again_not_replaced(server, browser) -> None:
    boss = await make_staff(server, ["super_admin"])
    problems: list[str] = []
    context, page = await open_console(browser, server, boss, problems)
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-state", "no-team-key")

    async def refuse(route) -> None:
        await route.abort()

    await page.route("**/api/v1/admin/support/team-keys/*/grants/**", refuse)  # the network drops the grant
    await page.click("#create-team-key")
    await expect(page.locator("#setup-text")).to_contain_text("The team key could not be created")
    await expect(status).to_have_attribute("data-state", "no-team-key")
    keys = (await server.client.get("/api/v1/admin/support/team-keys", headers=boss["headers"])).json()["items"]
    assert [k["key_id"] for k in keys] == ["team:1"]  # registered, but sealed to nobody yet
    await page.unroute("**/api/v1/admin/support/team-keys/*/grants/**", refuse)
    await page.click("#create-team-key")
    await expect(status).to_have_attribute("data-state", "live")
    keys = (await server.client.get("/api/v1/admin/support/team-keys", headers=boss["headers"])).json()["items"]
    assert [k["key_id"] for k in keys] == ["team:1"]
    grants = (await server.client.get("/api/v1/support/team-keys/grants", headers=boss["headers"])).json()["items"]
    assert [g["team_key_id"] for g in grants] == ["team:1"]
    assert all("ERR_FAILED" in p for p in problems), problems  # the dropped request, and nothing else
    await context.close()


async def test_supervisors_list_team_keys_and_who_holds_them(server) -> None:
    boss = Device(server, await make_staff(server, ["admin"]))
    agent = Device(server, await make_staff(server, ["support_agent"]))
    await agent.register()
    listed = await server.client.get("/api/v1/admin/support/team-keys", headers=boss.headers)
    assert listed.status_code == 200 and listed.json()["items"] == []
    refused = await server.client.get("/api/v1/admin/support/agents", headers=agent.headers)
    assert_error(refused, 403, "forbidden")
    assert_error(await server.client.get("/api/v1/admin/support/team-keys", headers=agent.headers), 403, "forbidden")

    team = PrivateKey.generate()
    made = await server.client.post("/api/v1/admin/support/team-keys", headers=boss.headers,
                                    json={"public_key": b64(bytes(team.public_key))})
    assert made.status_code == 201
    holders = (await server.client.get("/api/v1/admin/support/agents", headers=boss.headers)).json()["items"]
    mine = next(h for h in holders if h["user_id"] == agent.user_id)
    assert [(d["key_id"], d["team_key_ids"]) for d in mine["devices"]] == [(agent.key_id, [])]
    assert all(h["user_id"] != boss.user_id for h in holders)  # an admin is no agent
    sealed = SealedBox(agent.private.public_key).encrypt(bytes(team))
    granted = await server.client.put(grant_path("team:1", agent.key_id), headers=boss.headers,
                                      json={"sealed_private_key": b64(sealed)})
    assert granted.status_code == 204
    holders = (await server.client.get("/api/v1/admin/support/agents", headers=boss.headers)).json()["items"]
    device = next(h for h in holders if h["user_id"] == agent.user_id)["devices"][0]
    assert device["team_key_ids"] == ["team:1"] and "sealed_private_key" not in device
    keys = (await server.client.get("/api/v1/admin/support/team-keys", headers=boss.headers)).json()["items"]
    assert [(k["key_id"], k["active"]) for k in keys] == [("team:1", True)]
