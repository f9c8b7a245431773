"""A party across two server processes on one Redis, one of them a real `run.py` that is
SIGKILLed: members on either process see one state, and the crash loses no party."""

from __future__ import annotations

import asyncio
import signal
import uuid

from server.party import state as rules
from storage.party.store import RedisPartyStore
from tests.party.helpers import party_title, viewer
from tests.platform.test_process import launch  # noqa: F401  (the fixture)


async def test_two_processes_one_party_and_a_crash_loses_nothing(
        launch, start_server, mongo_url, redis_url, tmp_path, clip, members, monkeypatch) -> None:  # noqa: F811
    shared = {"REDIS_URL": redis_url, "NAMELESS_MONGO_DB": f"party_{uuid.uuid4().hex[:10]}",
              "NAMELESS_SECRET_KEY": "shared-secret-for-both-processes-0123456789"}
    a = launch(tmp_path / "a", MONGO_URL=mongo_url, **shared)
    b = await start_server(**shared)
    a.wait_ready()
    title_id = await party_title(b, clip)

    host, guest, quiet = [members(await viewer(b)) for _ in range(3)]
    await host.connect(a.url)
    created = await host.ok("party.create", {"content_id": title_id})
    await guest.connect(b.url)
    await guest.ok("party.join", {"invite_code": created["invite_code"]})
    await quiet.connect(a.url)
    await quiet.ok("party.join", {"invite_code": created["invite_code"]})

    played = (await host.ok("party.control", {"action": "play"}))["state"]  # made on A
    await guest.wait("party.state", lambda s: s["seq"] == played["seq"])  # seen on B
    sought = (await guest.call("party.control", {"action": "seek", "position": 2.0}))
    assert sought["ok"] is False and sought["error"]["code"] == "not_host"
    await host.ok("party.control", {"action": "seek", "position": 2.0})
    last = await guest.wait("party.state", lambda s: s["position"] == 2.0 and s["playing"])

    monkeypatch.setattr(rules, "SEAT_GRACE_MS", 1_500)
    a.proc.send_signal(signal.SIGKILL)  # no goodbye: A's sockets just vanish
    a.proc.wait()
    # the host comes back through B and takes the same seat, with the party as it was
    again = members(host.user)
    await again.connect(b.url)
    back = await again.ok("party.join", {"party_id": created["party_id"]})
    assert back["host_id"] == host.user_id and back["state"]["seq"] >= last["seq"]
    assert back["state"]["playing"] is True and back["state"]["position"] == 2.0
    assert back["playback"]["session_id"] == host.playback["session_id"]
    # the member who never returns is noticed through A's presence expiring, then loses the seat
    await guest.wait("party.member", lambda m: m["user_id"] == quiet.user_id and m["event"] == "disconnected",
                     timeout=45)  # A's presence lapses (ALIVE_TTL_MS), then a sweep notices
    await guest.wait("party.member", lambda m: m["user_id"] == quiet.user_id and m["event"] == "left", timeout=30)
    paused = (await again.ok("party.control", {"action": "pause"}))["state"]
    await guest.wait("party.state", lambda s: s["seq"] == paused["seq"])
    seqs = [s["seq"] for s in guest.of("party.state")]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


async def test_a_host_who_vanishes_is_replaced(any_server, clip, members, monkeypatch) -> None:
    monkeypatch.setattr(rules, "HOST_GRACE_MS", 300)
    title_id = await party_title(any_server, clip)
    host, first, second = [members(await viewer(any_server)) for _ in range(3)]
    for member in (host, first, second):
        await member.connect(any_server.url)
    created = await host.ok("party.create", {"content_id": title_id})
    await first.ok("party.join", {"invite_code": created["invite_code"]})
    await second.ok("party.join", {"invite_code": created["invite_code"]})
    await host.sio.disconnect()
    changed = await second.wait("party.host", timeout=15)
    assert changed["host_id"] == first.user_id  # present longest after the host
    assert (await first.ok("party.control", {"action": "play"}))["state"]["by"] == first.user_id


async def test_a_process_that_stops_hands_its_seats_over_at_once(start_server, redis_url, clip, members) -> None:
    """A stopping process withdraws its presence first: the other marks its seats
    disconnected at its next presence check, without waiting for the presence to lapse."""
    a = await start_server(REDIS_URL=redis_url)
    b = await start_server(REDIS_URL=redis_url, NAMELESS_MONGO_DB=a.runtime.settings.mongo_db)
    title_id = await party_title(b, clip)
    host, guest = [members(await viewer(b)) for _ in range(2)]
    await host.connect(b.url)
    created = await host.ok("party.create", {"content_id": title_id})
    await guest.connect(a.url)
    await guest.ok("party.join", {"invite_code": created["invite_code"]})

    store = RedisPartyStore(b.platform.redis, prefix=f"{a.runtime.settings.mongo_db}:party:")
    process_a = a.runtime.services.parties.process_id
    assert await store.alive(process_a)
    await a.runtime.stop()
    assert not await store.alive(process_a)
    await host.wait("party.member", lambda m: (m["user_id"], m["event"]) == (guest.user_id, "disconnected"),
                    timeout=45)


async def test_changes_racing_from_two_processes_are_each_applied_once_in_order(
        start_server, redis_url, clip, members) -> None:
    """Two members on two processes fire controls at the same party at once: every one is
    applied (a commit that lost the race is applied again to the newer record), each to
    its own state, and every member sees each state once and in order."""
    a = await start_server(REDIS_URL=redis_url)
    b = await start_server(REDIS_URL=redis_url, NAMELESS_MONGO_DB=a.runtime.settings.mongo_db)
    title_id = await party_title(a, clip)
    host, guest = [members(await viewer(a)) for _ in range(2)]
    await host.connect(a.url)
    created = await host.ok("party.create", {"content_id": title_id, "everyone_controls": True})
    await guest.connect(b.url)
    await guest.ok("party.join", {"invite_code": created["invite_code"]})
    first = created["state"]["seq"]

    per_member = 15
    replies = await asyncio.gather(*(m.ok("party.control", {"action": "seek", "position": float(k * 2 + i)})
                                     for k in range(per_member) for i, m in enumerate((host, guest))))
    seqs = sorted(r["state"]["seq"] for r in replies)
    assert seqs == list(range(first + 1, first + 1 + 2 * per_member))  # none lost, none doubled
    for m in (host, guest):
        await m.wait("party.state", lambda s: s["seq"] == seqs[-1])
        seen = [s["seq"] for s in m.of("party.state")]
        assert seen == sorted(set(seen)) and set(seqs) <= set(seen)
