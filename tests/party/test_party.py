"""Watch parties over the real app: seats, entitlement, host rules, order, buffering,
rejoining, chat, invites as links."""

from __future__ import annotations

import html

from server.party import state as rules
from tests.helpers import assert_error
from tests.party.helpers import error_code, party_title, viewer


async def seated(served, clip, members, count: int, **create):
    """A party of `count` members on one title: (host, guests, create reply)."""
    title_id = await party_title(served, clip)
    host = members(await viewer(served))
    await host.connect(served.url)
    created = await host.ok("party.create", {"content_id": title_id, **create})
    guests = []
    for _ in range(count - 1):
        guest = members(await viewer(served))
        await guest.connect(served.url)
        await guest.ok("party.join", {"invite_code": created["invite_code"]})
        guests.append(guest)
    return host, guests, created


async def test_create_join_and_controls_reach_every_member_in_order(any_server, clip, members) -> None:
    host, guests, created = await seated(any_server, clip, members, 3)
    assert len(created["invite_code"]) >= 16 and created["state"]["playing"] is False
    assert created["playback"]["manifest_url"].startswith(any_server.url + "/media/")
    playlist = await any_server.client.get(created["playback"]["manifest_url"])
    assert playlist.status_code == 200 and b"#EXTM3U" in playlist.content

    joined = await guests[0].ok("party.join", {"invite_code": created["invite_code"]})  # again: same seat
    assert [m["user_id"] for m in joined["members"]] == [host.user_id, guests[0].user_id, guests[1].user_id]
    assert joined["host_id"] == host.user_id

    seqs = []
    for action, extra in [("play", {}), ("seek", {"position": 3.5}), ("rate", {"rate": 1.25}), ("pause", {})]:
        reply = await host.ok("party.control", {"action": action, **extra})
        seqs.append(reply["state"]["seq"])
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    for member in [host, *guests]:
        await member.wait("party.state", lambda s: s["seq"] == seqs[-1])
        got = [s["seq"] for s in member.of("party.state")]
        assert got == sorted(got) and set(seqs) <= set(got), got
    last = guests[1].of("party.state")[-1]
    assert last["playing"] is False and last["rate"] == 1.25 and last["by"] == host.user_id
    assert 3.5 <= last["position"] < 10

    assert error_code(await guests[0].call("party.control", {"action": "play"})) == "not_host"
    assert error_code(await host.call("party.control", {"action": "seek"})) == "validation_failed"
    assert error_code(await host.call("party.control", {"action": "rate", "rate": 9})) == "validation_failed"
    assert error_code(await host.call("party.control", {"action": "jump"})) == "validation_failed"
    stale = await host.call("party.control", {"action": "seek", "position": 1, "seq": seqs[0]})
    assert error_code(stale) == "stale_state" and stale["error"]["details"]["state"]["seq"] == seqs[-1]

    await host.ok("party.settings", {"everyone_controls": True})
    assert (await guests[0].ok("party.control", {"action": "play"}))["state"]["by"] == guests[0].user_id
    assert error_code(await guests[0].call("party.settings", {"everyone_controls": False})) == "not_host"
    assert error_code(await guests[0].call("party.nope", {})) == "unknown_event"


async def test_members_must_be_entitled_and_the_invite_must_be_real(server, clip, members, monkeypatch) -> None:
    _host, _, created = await seated(server, clip, members, 1)
    code = created["invite_code"]

    unpaid = members(await viewer(server, plan_id=None))
    await unpaid.connect(server.url)
    assert error_code(await unpaid.call("party.join", {"invite_code": code})) == "subscription_required"

    busy = await viewer(server, plan_id="basic")  # one stream at a time
    started = await server.client.post(f"/api/v1/playback/{created['content']['content_id']}/start", json={},
                                       headers=busy["headers"])
    assert started.status_code == 200
    busy_member = members(busy)
    await busy_member.connect(server.url)
    assert error_code(await busy_member.call("party.join", {"invite_code": code})) == "too_many_streams"

    stranger = members(await viewer(server))
    await stranger.connect(server.url)
    assert error_code(await stranger.call("party.join", {"invite_code": code[:-2] + "xx"})) == "invite_invalid"
    assert error_code(await stranger.call("party.join", {"party_id": created["party_id"]})) == "party_not_found"
    assert error_code(await stranger.call("party.join", {})) == "validation_failed"
    assert error_code(await stranger.call("party.control", {"action": "play"})) == "not_in_party"

    monkeypatch.setattr(rules, "MAX_MEMBERS", 2)
    await stranger.ok("party.join", {"invite_code": code})
    late = members(await viewer(server))
    await late.connect(server.url)
    assert error_code(await late.call("party.join", {"invite_code": code})) == "party_full"
    active = await server.client.get("/api/v1/me", headers=late.user["headers"])
    assert active.status_code == 200  # and the refused member holds no stream slot:
    again = await server.client.post(f"/api/v1/playback/{created['content']['content_id']}/start", json={},
                                     headers=late.user["headers"])
    assert again.status_code == 200


async def test_buffering_pauses_everyone_and_the_party_goes_on_without_a_laggard(
        any_server, clip, members, monkeypatch) -> None:
    host, (guest, other), _ = await seated(any_server, clip, members, 3)
    await host.ok("party.control", {"action": "play"})
    waiting = (await guest.ok("party.buffering", {"position": 1.0}))["state"]
    assert waiting["playing"] is False and waiting["buffering"] == [guest.user_id]
    assert waiting["waiting_until_ms"] is not None and waiting["by"] == "party"
    await other.wait("party.state", lambda s: s["seq"] == waiting["seq"] and not s["playing"])
    resumed = (await guest.ok("party.ready", {"position": 1.0}))["state"]
    assert resumed["playing"] is True and resumed["buffering"] == [] and resumed["position"] == waiting["position"]
    await host.wait("party.state", lambda s: s["seq"] == resumed["seq"] and s["playing"])

    monkeypatch.setattr(rules, "BUFFER_WAIT_MS", 300)
    stuck = (await other.ok("party.buffering", {"position": 2.0}))["state"]
    assert stuck["playing"] is False
    # nobody says ready: the party must go on by itself after the limit
    on = await guest.wait("party.state", lambda s: s["seq"] > stuck["seq"] and s["playing"], timeout=10)
    assert on["buffering"] == [] and on["by"] == "party"
    # the laggard catches up by seeking; buffering again at once does not stop everyone
    assert (await other.ok("party.buffering", {"position": 2.0}))["state"]["playing"] is True
    # a host's pause wins over a wait
    await guest.ok("party.buffering", {"position": 3.0})
    paused = (await host.ok("party.control", {"action": "pause"}))["state"]
    assert paused["playing"] is False and paused["buffering"] == []
    assert (await guest.ok("party.ready", {}))["state"]["playing"] is False


async def test_host_hand_over_leaving_and_the_end(server, clip, members) -> None:
    host, (first, second), created = await seated(server, clip, members, 3)
    assert error_code(await first.call("party.host", {"user_id": second.user_id})) == "not_host"
    await host.ok("party.host", {"user_id": first.user_id})
    await second.wait("party.host", lambda h: h["host_id"] == first.user_id)
    await first.ok("party.control", {"action": "play"})
    assert error_code(await host.call("party.control", {"action": "pause"})) == "not_host"

    await first.ok("party.leave")  # the host leaves: the member present longest takes over
    await second.wait("party.host", lambda h: h["host_id"] == host.user_id)
    await second.wait("party.member", lambda m: m["user_id"] == first.user_id and m["event"] == "left")
    assert error_code(await first.call("party.control", {"action": "pause"})) == "not_in_party"

    await host.ok("party.leave")
    await second.ok("party.leave")
    page = await server.client.get(f"/api/v1/parties/{created['invite_code']}", headers=host.user["headers"])
    assert_error(page, 404, "invite_invalid")
    # every seat's stream ended with the party: a one-stream plan could start again at once
    sessions = server.runtime.platform.db.playback_sessions
    assert await sessions.count_documents({"user_id": second.user_id, "ended": False}) == 0


async def test_a_dropped_member_takes_the_seat_back_in_sync(server, clip, members) -> None:
    host, (guest,), created = await seated(server, clip, members, 2)
    await host.ok("party.control", {"action": "play"})
    await host.ok("party.control", {"action": "seek", "position": 2.0})
    await guest.sio.disconnect()
    await host.wait("party.member", lambda m: m["user_id"] == guest.user_id and m["event"] == "disconnected")

    back = members(guest.user)
    await back.connect(server.url)
    took = await back.ok("party.join", {"party_id": created["party_id"]})
    seat = [m for m in took["members"] if m["user_id"] == guest.user_id]
    assert len(took["members"]) == 2 and seat[0]["connected"] is True
    state = took["state"]
    assert state["playing"] is True and state["position"] == 2.0 and state["seq"] >= 3
    assert took["playback"]["session_id"] == guest.playback["session_id"]  # the same stream slot, a fresh link
    await host.wait("party.member", lambda m: m["user_id"] == guest.user_id and m["event"] == "reconnected")
    await host.ok("party.control", {"action": "pause"})
    await back.wait("party.state", lambda s: not s["playing"])


async def test_ending_the_stream_gives_up_the_seat(server, clip, members) -> None:
    host, (guest,), _created = await seated(server, clip, members, 2)
    session_id = guest.playback["session_id"]
    stopped = await server.client.delete(f"/api/v1/playback/sessions/{session_id}", headers=guest.user["headers"])
    assert stopped.status_code == 204
    await host.wait("party.member", lambda m: m["user_id"] == guest.user_id and m["event"] == "left")
    assert error_code(await guest.call("party.control", {"action": "play"})) in ("not_in_party", "not_host")


async def test_chat_and_reactions_are_data_with_limits(server, clip, members) -> None:
    host, (guest,), _ = await seated(server, clip, members, 2)
    text = '<img src=x onerror="alert(1)"> hi \u202e'
    said = await guest.ok("party.chat", {"text": text})
    got = await host.wait("party.chat", lambda c: c["id"] == said["id"])
    assert got["text"] == '<img src=x onerror="alert(1)"> hi' and got["user_id"] == guest.user_id
    assert error_code(await guest.call("party.chat", {"text": "x" * 501})) == "validation_failed"
    assert error_code(await guest.call("party.chat", {"text": "  "})) == "validation_failed"
    assert error_code(await guest.call("party.react", {"emoji": "<b>"})) == "validation_failed"
    reacted = await guest.ok("party.react", {"emoji": "🍿"})
    assert (await host.wait("party.react", lambda r: r["id"] == reacted["id"]))["emoji"] == "🍿"
    replies = [await guest.call("party.chat", {"text": f"m{i}"}) for i in range(12)]
    assert any(r.get("ok") is False and r["error"]["code"] == "rate_limited" for r in replies)


async def test_the_invite_is_a_deep_link(server, clip, members) -> None:
    host, _, created = await seated(server, clip, members, 1)
    code = created["invite_code"]
    page = await server.client.get(f"/party/{code}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    title = created["content"]["title"]
    movie = (await server.client.get(f"/api/v1/titles/{created['content']['content_id']}",
                                     headers=host.user["headers"])).json()
    assert title and title == movie["title"]  # the title the catalog shows
    assert html.escape(title) in page.text and f"nameless://party/{code}" in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    api = await server.client.get(f"/api/v1/parties/{code}", headers=host.user["headers"])
    assert api.status_code == 200 and api.json()["title"] == title and api.json()["members"] == 1
    assert (await server.client.get(f"/api/v1/parties/{code}")).status_code == 401
    gone = await server.client.get("/party/" + "A" * 16)
    assert gone.status_code == 404 and "not valid" in gone.text
