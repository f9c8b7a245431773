"""Encrypted support chat over the real app: keys, conversations, delivery across two
processes, membership checks and attacks; the server never sees a plaintext."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets

import pytest

from tests.helpers import NamespaceClient, assert_error, eventually
from tests.support.helpers import Device, b64, grant_path, support_team, support_viewer


@pytest.fixture
async def closing():
    devices: list[Device] = []
    yield devices.append
    for device in devices:
        await device.close()


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("nameless", "tornado", "socketio", "engineio")):  # what the server logs
            self.lines.append(self.format(record) + " " + repr(record.__dict__))


async def test_messages_cross_two_processes_and_no_plaintext_is_stored_or_logged(
        start_server, redis_url, closing) -> None:
    capture = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        a = await start_server(REDIS_URL=redis_url, NAMELESS_LOG_LEVEL="DEBUG")
        b = await start_server(REDIS_URL=redis_url, NAMELESS_MONGO_DB=a.runtime.settings.mongo_db,
                               NAMELESS_LOG_LEVEL="DEBUG")
        _, (agent,) = await support_team(a)
        viewer = await support_viewer(a)
        for device in (agent, viewer):
            closing(device)
        await agent.connect(b.url)  # the agent is on B, online: conversations get assigned to them
        await viewer.connect(a.url)
        secret = f"my card ends {secrets.token_hex(6)} and playback fails"
        conversation = await viewer.open("Playback fails")
        cid = conversation["id"]
        assigned = await agent.wait("support.queue", lambda q: q["conversation"]["id"] == cid
                                    and q["conversation"]["assignee_id"] == agent.user_id)
        assert assigned["conversation"]["queued"] is False
        assert (await viewer.call("support.join", {"conversation_id": cid}))["last_seq"] == 0
        assert (await agent.call("support.join", {"conversation_id": cid}))["ok"] is True

        ciphertexts = []
        sent = await viewer.send(cid, secret, client_id="retry-me-123")
        assert sent["ok"] is True and sent["seq"] == 1
        again = await viewer.send(cid, secret, client_id="retry-me-123")  # a retry after a lost ack
        assert again["seq"] == 1 and again["message_id"] == sent["message_id"] and again["duplicate"] is True
        got = await agent.wait("support.message", lambda m: m["seq"] == 1)
        assert await agent.decrypt(got) == secret and got["sender_id"] == viewer.user_id
        ciphertexts.append(got["ciphertext"])

        reply = f"we reset your session {secrets.token_hex(6)}"
        answered = await agent.send(cid, reply)
        assert answered["seq"] == 2
        heard = await viewer.wait("support.message", lambda m: m["seq"] == 2)
        assert await viewer.decrypt(heard) == reply
        ciphertexts.append(heard["ciphertext"])

        # two writers on two processes at once: every message gets its own number, none skipped
        both = await asyncio.gather(*[viewer.send(cid, f"v{i}") for i in range(6)],
                                    *[agent.send(cid, f"a{i}") for i in range(6)])
        assert sorted(r["seq"] for r in both) == list(range(3, 15)), both

        # a client that reconnects fetches everything after its last sequence, once each
        history = await a.client.get(f"/api/v1/support/conversations/{cid}/messages?after_seq=1",
                                     headers=viewer.headers)
        assert [m["seq"] for m in history.json()["items"]] == list(range(2, 15))
        full = (await b.client.get(f"/api/v1/support/conversations/{cid}/messages", headers=agent.headers)).json()
        assert [m["seq"] for m in full["items"]] == list(range(1, 15)) and full["last_seq"] == 14

        await agent.call("support.read", {"conversation_id": cid, "seq": 1})
        read = await viewer.wait("support.read", lambda r: r["user_id"] == agent.user_id)
        assert read["seq"] == 1
        listed = (await a.client.get("/api/v1/support/conversations", headers=viewer.headers)).json()
        assert listed["items"][0]["unread"] == 14  # the viewer has read nothing yet

        db = a.runtime.platform.db
        for name in await db.list_collection_names():
            async for doc in db[name].find({}):
                for text in (secret, reply):
                    assert text not in repr(doc), (name, doc)
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    logged = "\n".join(capture.lines)
    assert "/api/v1/support/conversations" in logged  # the requests were logged...
    for text in (secret, reply, *ciphertexts):
        assert text not in logged  # ...with neither plaintext nor ciphertext


async def test_nobody_else_reaches_a_conversation(server, closing) -> None:
    _, (agent, other_agent) = await support_team(server, agents=2)
    viewer, stranger = await support_viewer(server), await support_viewer(server)
    for device in (agent, other_agent, viewer, stranger):
        closing(device)
        await device.connect()
    for busy in (agent, other_agent):
        await busy.call("support.presence", {"available": False})
    cid = (await viewer.open("Help"))["id"]
    assert (await agent.call("support.claim", {"conversation_id": cid}))["ok"] is True

    missing = "0" * 24
    for target in (cid, missing):  # another's conversation answers exactly like a missing one
        for event, extra in [("support.join", {}), ("support.read", {"seq": 1}), ("support.typing", {})]:
            reply = await stranger.call(event, {"conversation_id": target, **extra})
            assert reply["ok"] is False and reply["error"]["code"] == "conversation_not_found", (event, reply)
        sent = await stranger.call("support.send", {"conversation_id": target, "client_id": "stranger-1",
                                                    "nonce": b64(b"\0" * 24), "ciphertext": b64(b"x" * 40)})
        assert sent["error"]["code"] == "conversation_not_found"
        resp = await server.client.get(f"/api/v1/support/conversations/{target}/messages", headers=stranger.headers)
        assert_error(resp, 404, "conversation_not_found")
    # an agent it is not assigned to is a stranger too
    reply = await other_agent.call("support.join", {"conversation_id": cid})
    assert reply["error"]["code"] == "conversation_not_found"
    # a viewer cannot act as an agent
    assert (await viewer.call("support.claim", {"conversation_id": cid}))["error"]["code"] == "forbidden"
    # sizes, shapes and rates
    nonce = b64(b"\0" * 24)
    big = b64(b"x" * (16 * 1024 + 1))
    too_big = await viewer.call("support.send", {"conversation_id": cid, "client_id": "c" * 10, "nonce": nonce,
                                                 "ciphertext": big})
    assert too_big["error"]["code"] == "validation_failed"
    short_nonce = await viewer.call("support.send", {"conversation_id": cid, "client_id": "c" * 10,
                                                     "nonce": b64(b"\0" * 8), "ciphertext": b64(b"abc")})
    assert short_nonce["error"]["code"] == "validation_failed"
    replies = [await viewer.send(cid, f"m{i}") for i in range(122)]
    assert any(r["ok"] is False and r["error"]["code"] == "rate_limited" for r in replies)
    # wrapped keys may name only the team's key and the viewer's own devices
    team = (await server.client.get("/api/v1/support/team-key", headers=viewer.headers)).json()
    sealed = b64(b"k" * 80)
    foreign = await server.client.post("/api/v1/support/conversations", headers=viewer.headers, json={
        "subject": "x", "wrapped_keys": {team["key_id"]: sealed, stranger.key_id: sealed}})
    assert_error(foreign, 400, "validation_failed")
    no_team = await server.client.post("/api/v1/support/conversations", headers=viewer.headers, json={
        "subject": "x", "wrapped_keys": {viewer.key_id: sealed}})
    assert_error(no_team, 400, "validation_failed")
    # only supervisors hand out the team key
    forged = await server.client.put(grant_path(team["key_id"], viewer.key_id), headers=viewer.headers,
                                     json={"sealed_private_key": sealed})
    assert forged.status_code == 403


async def test_queue_claim_release_transfer_status_and_the_offline_viewer(server, closing) -> None:
    _, (first, second) = await support_team(server, agents=2)
    viewer = await support_viewer(server)
    for device in (first, second, viewer):
        closing(device)
    await first.connect()
    await second.connect()
    for agent in (first, second):  # nobody takes new work: conversations wait in the queue
        assert (await agent.call("support.presence", {"available": False}))["ok"] is True
    cid = (await viewer.open("Billing question"))["id"]
    queue = (await server.client.get("/api/v1/support/conversations", headers=first.headers)).json()["items"]
    assert [c["id"] for c in queue if c["queued"]] == [cid]

    claimed = await first.call("support.claim", {"conversation_id": cid})
    assert claimed["conversation"]["assignee_id"] == first.user_id
    taken = await second.call("support.claim", {"conversation_id": cid})
    assert taken["error"]["code"] == "conversation_not_found"  # no longer in the queue for others
    await first.call("support.join", {"conversation_id": cid})
    assert (await first.call("support.transfer", {"conversation_id": cid, "to": viewer.user_id}))["error"][
        "code"] == "not_an_agent"
    moved = await first.call("support.transfer", {"conversation_id": cid, "to": second.user_id})
    assert moved["conversation"]["assignee_id"] == second.user_id
    released = await second.call("support.release", {"conversation_id": cid})
    assert released["conversation"]["queued"] is True and released["conversation"]["assignee_id"] is None
    await second.call("support.presence", {"available": True, "capacity": 2})  # automatic assignment
    await second.wait("support.queue", lambda q: q["conversation"]["id"] == cid
                      and q["conversation"]["assignee_id"] == second.user_id)

    # the viewer is out of the chat: the reply becomes a notification, live to the app they
    # have open elsewhere, in the inbox, and a push queued in the outbox (per preferences)
    phone = await server.client.put("/api/v1/me/devices/fcm:viewer-phone-0123456789", json={"platform": "android"},
                                    headers=viewer.headers)
    assert phone.status_code == 204  # pushes are queued for users with a device
    app = NamespaceClient("/")
    closing(app)
    await app.sio.connect(server.url, auth={"token": viewer.user["access_token"]}, namespaces=["/"],
                          transports=["websocket"], wait_timeout=10)
    await second.call("support.join", {"conversation_id": cid})
    assert (await second.send(cid, "Your refund is on its way"))["ok"] is True
    live = await app.wait("notification", lambda n: n["kind"] == "support")  # relayed after the ack
    assert live["data"] == {"conversation_id": cid, "seq": 1}
    inbox = (await server.client.get("/api/v1/me/notifications", headers=viewer.headers)).json()["items"]
    assert inbox[0]["kind"] == "support" and inbox[0]["data"]["conversation_id"] == cid
    outbox = server.runtime.platform.db.outbox

    async def pushed():
        return await outbox.find_one({"channel": "push", "to": viewer.user_id, "kind": "support"})

    push = await eventually(pushed, "the push for the reply")
    assert push["data"] == {"conversation_id": cid, "seq": 1}
    assert "refund" not in repr(inbox) + repr(push) + repr(live)

    await viewer.connect()
    await viewer.call("support.join", {"conversation_id": cid})
    await viewer.call("support.typing", {"conversation_id": cid})
    assert (await second.wait("support.typing"))["user_id"] == viewer.user_id
    rating = await server.client.post(f"/api/v1/support/conversations/{cid}/rating", headers=viewer.headers,
                                      json={"rating": 5})
    assert_error(rating, 409, "not_resolved")
    done = await second.call("support.status", {"conversation_id": cid, "status": "resolved"})
    assert done["conversation"]["status"] == "resolved"
    assert (await viewer.wait("support.status"))["status"] == "resolved"
    rated = await server.client.post(f"/api/v1/support/conversations/{cid}/rating", headers=viewer.headers,
                                     json={"rating": 5})
    assert rated.status_code == 200 and rated.json()["rating"] == 5


async def test_without_a_team_key_support_says_so(server) -> None:
    viewer = await support_viewer(server)
    assert_error(await server.client.get("/api/v1/support/team-key", headers=viewer.headers), 503,
                 "support_not_configured")
    bad = await server.client.put("/api/v1/me/keys/phone", headers=viewer.headers,
                                  json={"public_key": base64.b64encode(b"short").decode()})
    assert_error(bad, 400, "validation_failed")


async def test_a_burst_is_numbered_in_order_and_stored_once(server, closing) -> None:
    _, (agent,) = await support_team(server)
    viewer = await support_viewer(server)
    for device in (agent, viewer):
        closing(device)
        await device.connect()
    cids = [(await viewer.open(f"Question {i}"))["id"] for i in range(6)]
    await agent.call("support.presence", {"available": False})
    for cid in cids:
        await viewer.call("support.join", {"conversation_id": cid})
    sends = [(cid, f"c{n}-{i}", None) for n, cid in enumerate(cids) for i in range(4)]
    sends += [(cids[0], "again", "the-same-client-id")] * 3  # a retry racing its first attempt
    replies = await asyncio.gather(*(viewer.send(cid, text, client_id) for cid, text, client_id in sends))
    assert all(r["ok"] for r in replies), replies
    repeated = [r for (_, _, client_id), r in zip(sends, replies, strict=True) if client_id]
    assert len({r["message_id"] for r in repeated}) == 1 and sum(r["duplicate"] for r in repeated) == 2
    for n, cid in enumerate(cids):
        acked = sorted(r["seq"] for (c, _, client_id), r in zip(sends, replies, strict=True)
                       if c == cid and not r["duplicate"])
        history = (await server.client.get(f"/api/v1/support/conversations/{cid}/messages",
                                           headers=viewer.headers)).json()["items"]
        assert acked == [m["seq"] for m in history] == list(range(1, len(acked) + 1)), (n, acked, history)
        await viewer.wait("support.message", lambda m, c=cid, last=acked[-1]: m["conversation_id"] == c
                          and m["seq"] == last)
        relayed = [m["seq"] for m in viewer.of("support.message") if m["conversation_id"] == cid]
        assert relayed == acked, (n, relayed)  # each once, in the order stored
    listed = (await server.client.get("/api/v1/support/conversations", headers=viewer.headers)).json()["items"]
    assert {c["id"]: c["last_seq"] for c in listed} == {cid: 5 if n == 0 else 4 for n, cid in enumerate(cids)}


async def test_the_agent_list_and_forgetting_a_device_key(server, closing) -> None:
    supervisor, (first, second) = await support_team(server, agents=2)
    viewer = await support_viewer(server)
    for device in (first, viewer):
        closing(device)
    await first.connect()
    await first.call("support.presence", {"available": True, "capacity": 3})
    cid = (await viewer.open("Subtitles are late"))["id"]
    await first.wait("support.queue", lambda q: q["conversation"]["id"] == cid
                     and q["conversation"]["assignee_id"] == first.user_id)

    for who in (first, supervisor):  # agents pick whom to transfer to; supervisors watch the team
        listed = await server.client.get("/api/v1/support/agents", headers=who.headers)
        assert listed.status_code == 200, listed.text
        agents = {a["user_id"]: a for a in listed.json()["items"]}
        assert agents[first.user_id] | {"display_name": ""} == {
            "user_id": first.user_id, "display_name": "", "available": True, "capacity": 3, "online": True,
            "open": 1}
        assert agents[second.user_id]["online"] is False and agents[second.user_id]["open"] == 0
        assert supervisor.user_id not in agents  # not a support agent
    assert_error(await server.client.get("/api/v1/support/agents", headers=viewer.headers), 403, "forbidden")

    # a browser signed out for good: its public key and the team key sealed to it go
    forgotten = await server.client.delete(f"/api/v1/me/keys/{second.device_id}", headers=second.headers)
    assert forgotten.status_code == 204, forgotten.text
    mine = (await server.client.get("/api/v1/me/keys", headers=second.headers)).json()["items"]
    assert second.key_id not in [k["key_id"] for k in mine]
    grants = (await server.client.get("/api/v1/support/team-keys/grants", headers=second.headers)).json()["items"]
    assert grants == []
    team = (await server.client.get("/api/v1/support/team-key", headers=second.headers)).json()["key_id"]
    regrant = await server.client.put(grant_path(team, second.key_id), headers=supervisor.headers,
                                      json={"sealed_private_key": b64(b"k" * 80)})
    assert_error(regrant, 404, "device_key_not_found")
    assert_error(await server.client.delete(f"/api/v1/me/keys/{second.device_id}", headers=second.headers), 404,
                 "device_key_not_found")
    # the first agent's own device is untouched
    kept = (await server.client.get("/api/v1/support/team-keys/grants", headers=first.headers)).json()["items"]
    assert len(kept) == 1
