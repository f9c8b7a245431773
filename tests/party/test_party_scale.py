"""Many parties at once on two processes whose Redis pools are far smaller than the burst:
half the sockets drop together and every drop is recorded, the members come back into
their own seats together, and controls then reach every member once and in order.
(The run with 500 parties of 10 is bench/party_sync.py --scenario scale; this keeps the suite quick.)"""

from __future__ import annotations

import asyncio
import logging

from tests.helpers import make_staff, signup
from tests.party.helpers import Member, party_title

PARTIES, SIZE = 10, 10
STREAMS = 4  # Premium: a user holds at most this many seats (one stream each)
POOL = "8"  # Redis connections per process: every burst below is many times that
WAIT_MS = "10000"  # for a connection from the pool; generous, as a loaded machine serves the pool slowly
TIMEOUT = 60.0  # generous: a loaded 2-core machine slows everything, the test waits on conditions


async def viewers(served, count: int) -> list[dict]:
    admin = await make_staff(served, ["admin"])
    users = []
    for _ in range(count):
        user = await signup(served.client)
        granted = await served.client.post(f"/api/v1/admin/users/{user['user']['id']}/complimentary",
                                           json={"plan_id": "premium", "days": 1}, headers=admin["headers"])
        assert granted.status_code == 200, granted.text
        users.append(user)
    return users


async def test_bursts_of_drops_and_rejoins_lose_no_seat(start_server, redis_url, clip, members, caplog) -> None:
    env = {"REDIS_URL": redis_url, "NAMELESS_REDIS_MAX_CONNECTIONS": POOL,
           "NAMELESS_DEPENDENCY_TIMEOUT_MS": WAIT_MS, "NAMELESS_RATE_LIMIT_AUTH": "1000"}
    a = await start_server(**env)
    b = await start_server(**env, NAMELESS_MONGO_DB=a.runtime.settings.mongo_db)
    title_id = await party_title(a, clip)
    users = await viewers(a, PARTIES * SIZE // STREAMS)
    # member j of party k: user k*SIZE+j (mod the users), so each user holds STREAMS seats;
    # even members (the host among them) on B, odd ones on A
    parties = [[members(users[(k * SIZE + j) % len(users)]) for j in range(SIZE)] for k in range(PARTIES)]
    on_a = [m for party in parties for m in party[1::2]]
    await asyncio.gather(*(m.connect((a if m in on_a else b).url) for party in parties for m in party))

    async def seat(party: list[Member]) -> str:
        created = await party[0].ok("party.create", {"content_id": title_id})
        await asyncio.gather(*(m.ok("party.join", {"invite_code": created["invite_code"]}) for m in party[1:]))
        return str(created["party_id"])

    caplog.set_level(logging.ERROR)
    ids = await asyncio.gather(*(seat(party) for party in parties))
    seats = {id(m): m.playback["session_id"] for m in on_a}

    # every socket on A drops at once: each party loses half its members together
    await asyncio.gather(*(m.sio.disconnect() for m in on_a))
    for party in parties:
        host = party[0]
        for gone in party[1::2]:
            await host.wait("party.member", lambda e, uid=gone.user_id: (e["user_id"], e["event"]) == (
                uid, "disconnected"), timeout=TIMEOUT)

    # they all come back at once, through A, into their own seats and streams
    back = [members(m.user) for m in on_a]
    await asyncio.gather(*(m.connect(a.url) for m in back))
    half = SIZE // 2  # back[k*half:(k+1)*half] are party k's
    replies = await asyncio.gather(*(m.ok("party.join", {"party_id": ids[i // half]}) for i, m in enumerate(back)))
    assert [r["playback"]["session_id"] for r in replies] == [seats[id(m)] for m in on_a]
    for k, party in enumerate(parties):
        for m in back[k * half:(k + 1) * half]:
            await party[0].wait("party.member", lambda e, uid=m.user_id: (e["user_id"], e["event"]) == (
                uid, "reconnected"), timeout=TIMEOUT)

    # every host controls at once; every member sees every state once and in order
    played = await asyncio.gather(*(party[0].ok("party.control", {"action": "play"}) for party in parties))
    for k, party in enumerate(parties):
        seq = played[k]["state"]["seq"]
        for m in party[0::2] + back[k * half:(k + 1) * half]:
            await m.wait("party.state", lambda s, seq=seq: s["seq"] == seq, timeout=TIMEOUT)
            seqs = [s["seq"] for s in m.of("party.state")]
            assert seqs == sorted(set(seqs)), seqs
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("nameless")]


async def test_a_drop_that_cannot_be_recorded_yet_is_retried(start_server, redis_url, clip, members,
                                                             caplog) -> None:
    """Redis refuses the party's record for a while (here: its key holds a value of the
    wrong type, so every read fails): the drop is recorded once it answers, not lost."""
    served = await start_server(REDIS_URL=redis_url)
    title_id = await party_title(served, clip)
    host, guest = [members(user) for user in await viewers(served, 2)]
    for m in (host, guest):
        await m.connect(served.url)
    created = await host.ok("party.create", {"content_id": title_id})
    await guest.ok("party.join", {"invite_code": created["invite_code"]})

    redis = served.platform.redis
    key = f"{served.runtime.settings.mongo_db}:party:p:{created['party_id']}"
    aside = f"{key}:aside"
    await redis.rename(key, aside)
    await redis.set(key, "not a party")
    caplog.set_level(logging.WARNING, logger="nameless.party")
    await guest.sio.disconnect()
    for _ in range(int(TIMEOUT / 0.05)):
        if any("not recorded yet" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the drop was never tried")
    assert not [e for e in host.of("party.member") if e["event"] == "disconnected"]
    await redis.rename(aside, key)  # replaces the wrong value
    await host.wait("party.member", lambda e: (e["user_id"], e["event"]) == (guest.user_id, "disconnected"),
                    timeout=TIMEOUT)
