"""What agents keep beside a conversation (notes, canned responses), attachments, and a
returning viewer's history on a new device."""

from __future__ import annotations

import secrets

from nacl.public import PublicKey, SealedBox
from nacl.secret import SecretBox
from nacl.utils import random

from tests.helpers import assert_error, login
from tests.support.helpers import Device, b64, support_team, support_viewer, unb64


async def started(served):
    _, (agent,) = await support_team(served)
    server = served
    viewer = await support_viewer(server)
    await agent.connect()
    await viewer.connect()
    conversation = await viewer.open("Playback error")
    cid = conversation["id"]
    await agent.wait("support.queue", lambda q: q["conversation"]["id"] == cid
                     and q["conversation"]["assignee_id"] == agent.user_id)
    for device in (agent, viewer):
        assert (await device.call("support.join", {"conversation_id": cid}))["ok"] is True
    return server, agent, viewer, conversation


async def test_notes_and_canned_responses_stay_with_agents(server) -> None:
    _, agent, viewer, conversation = await started(server)
    cid = conversation["id"]
    try:
        team = (await server.client.get("/api/v1/support/team-key", headers=agent.headers)).json()
        note = "customer sounds upset; offer a free month"
        sealed = b64(SealedBox(PublicKey(unb64(team["public_key"]))).encrypt(note.encode()))
        made = await server.client.post(f"/api/v1/support/conversations/{cid}/notes", headers=agent.headers,
                                        json={"team_key_id": team["key_id"], "sealed": sealed,
                                              "client_id": "n1-abcdef"})
        assert made.status_code == 201, made.text
        again = await server.client.post(f"/api/v1/support/conversations/{cid}/notes", headers=agent.headers,
                                         json={"team_key_id": team["key_id"], "sealed": sealed,
                                               "client_id": "n1-abcdef"})
        assert again.json()["id"] == made.json()["id"]  # stored once
        listed = (await server.client.get(f"/api/v1/support/conversations/{cid}/notes", headers=agent.headers)).json()
        assert len(listed["items"]) == 1
        assert SealedBox(agent.team_private).decrypt(unb64(listed["items"][0]["sealed"])).decode() == note
        await agent.wait("support.note", lambda n: n["id"] == made.json()["id"])
        assert_error(await server.client.get(f"/api/v1/support/conversations/{cid}/notes", headers=viewer.headers),
                     404, "conversation_not_found")
        await viewer.send(cid, "still there?")
        await agent.wait("support.message")
        assert viewer.of("support.note") == []  # relayed to agents only

        canned = b64(SealedBox(PublicKey(unb64(team["public_key"]))).encrypt(b"Have you tried restarting?"))
        added = await server.client.post("/api/v1/support/canned", headers=agent.headers,
                                         json={"team_key_id": team["key_id"], "sealed": canned})
        assert added.status_code == 201
        items = (await server.client.get("/api/v1/support/canned", headers=agent.headers)).json()["items"]
        assert SealedBox(agent.team_private).decrypt(unb64(items[0]["sealed"])) == b"Have you tried restarting?"
        assert (await server.client.get("/api/v1/support/canned", headers=viewer.headers)).status_code == 403
        bad = await server.client.post("/api/v1/support/canned", headers=agent.headers,
                                       json={"team_key_id": "team:999", "sealed": canned})
        assert_error(bad, 400, "validation_failed")
    finally:
        await agent.close()
        await viewer.close()


async def test_attachments_are_opaque_and_for_members_only(server) -> None:
    _, agent, viewer, conversation = await started(server)
    cid = conversation["id"]
    stranger = await support_viewer(server)
    try:
        screenshot = secrets.token_bytes(200_000)
        nonce = random(SecretBox.NONCE_SIZE)
        blob = nonce + SecretBox(viewer.keys[cid]).encrypt(screenshot, nonce).ciphertext
        up = await server.client.post(f"/api/v1/support/conversations/{cid}/attachments", content=blob,
                                      headers={**viewer.headers, "Content-Type": "application/octet-stream"})
        assert up.status_code == 201, up.text
        aid = up.json()["attachment_id"]
        got = await server.client.get(f"/api/v1/support/conversations/{cid}/attachments/{aid}", headers=agent.headers)
        assert got.status_code == 200 and got.headers["content-type"] == "application/octet-stream"
        key = await agent.key_for(cid)
        assert SecretBox(key).decrypt(got.content[24:], got.content[:24]) == screenshot
        denied = await server.client.get(f"/api/v1/support/conversations/{cid}/attachments/{aid}",
                                         headers=stranger.headers)
        assert_error(denied, 404, "conversation_not_found")
        huge = await server.client.post(f"/api/v1/support/conversations/{cid}/attachments", content=b"x" * (5 << 20),
                                        headers={**viewer.headers, "Content-Type": "application/octet-stream"})
        assert huge.status_code == 413
        typed = await server.client.post(f"/api/v1/support/conversations/{cid}/attachments", content=blob,
                                         headers={**viewer.headers, "Content-Type": "image/png"})
        assert typed.status_code == 415
    finally:
        await agent.close()
        await viewer.close()


async def test_a_returning_viewer_reads_the_history_on_a_new_device(server) -> None:
    _, agent, viewer, conversation = await started(server)
    cid = conversation["id"]
    try:
        await viewer.send(cid, "first question")
        await agent.wait("support.message", lambda m: m["seq"] == 1)
        await agent.send(cid, "first answer")
        await viewer.wait("support.message", lambda m: m["seq"] == 2)
        # the same viewer signs in on a new phone, with a key pair of its own
        relogged = (await login(server.client, viewer.user["email"])).json()
        bearer = {"Authorization": f"Bearer {relogged['access_token']}"}
        phone = Device(server, {**viewer.user, **relogged, "headers": bearer})
        await phone.register()
        assert cid in [c["id"] for c in (await server.client.get("/api/v1/support/conversations",
                                                                    headers=phone.headers)).json()["items"]]
        # the old device seals the conversation key to the new one
        sealed = b64(SealedBox(phone.private.public_key).encrypt(viewer.keys[cid]))
        added = await server.client.post(f"/api/v1/support/conversations/{cid}/keys", headers=viewer.headers,
                                         json={"wrapped_keys": {phone.key_id: sealed}})
        assert added.status_code == 200 and phone.key_id in added.json()["wrapped_keys"]
        history = (await server.client.get(f"/api/v1/support/conversations/{cid}/messages",
                                           headers=phone.headers)).json()["items"]
        assert [await phone.decrypt(m) for m in history] == ["first question", "first answer"]
        # nobody may slip in a key of someone else's, or replace a copy
        other = await support_viewer(server)
        foreign = await server.client.post(f"/api/v1/support/conversations/{cid}/keys", headers=viewer.headers,
                                           json={"wrapped_keys": {other.key_id: sealed}})
        assert_error(foreign, 400, "validation_failed")
        replaced = await server.client.post(f"/api/v1/support/conversations/{cid}/keys", headers=viewer.headers,
                                            json={"wrapped_keys": {phone.key_id: b64(b"z" * 80)}})
        assert replaced.json()["wrapped_keys"][phone.key_id] == sealed
    finally:
        await agent.close()
        await viewer.close()
