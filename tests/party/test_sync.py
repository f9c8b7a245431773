"""Players in sync: simulated viewers (tests/party/players.py) with skewed, drifting clocks
and a network delay, on two app processes sharing Redis, follow a play and a seek and end
up within 20 ms of the party's true position, every state received once and in order."""

from __future__ import annotations

import asyncio
import random

from tests.party.helpers import party_title, viewer
from tests.party.players import Clock, Fleet, Link, Player, SeekModel, true_ms

PLAYERS = 6
WITHIN_MS = 20.0
SETTLE_TIMEOUT_S = 60.0  # generous: a loaded 2-core machine slows the servers, not the error


async def test_players_on_two_processes_converge_after_play_and_seek(start_server, redis_url, clip) -> None:
    a = await start_server(REDIS_URL=redis_url)
    b = await start_server(REDIS_URL=redis_url, NAMELESS_MONGO_DB=a.runtime.settings.mongo_db)
    title_id = await party_title(a, clip)
    rng = random.Random(20)
    fleet = Fleet(sample_every_ms=50)
    players = []
    for i in range(PLAYERS):
        user = await viewer(a)
        clock = Clock(rng.choice([-1, 1]) * rng.uniform(2000, 5000), rng.choice([-1, 1]) * rng.uniform(30, 50))
        players.append(fleet.add(Player(f"p{i}", user["access_token"], user_id=user["user"]["id"], clock=clock,
                                        link=Link.random(rng, (5, 20), 2), seek=SeekModel.random(rng), rng=rng)))
    try:
        for i, player in enumerate(players):
            await player.connect((a if i % 2 == 0 else b).url)
        await asyncio.gather(*(p.sync() for p in players))
        for p in players:  # the estimate is good to a few ms, whatever the skew
            true_offset = true_ms() - p.clock.local_ms()
            assert abs(p.offset_ms - true_offset) < 10, (p.name, p.offset_ms, true_offset, p.sync_rtts)

        host, guests = players[0], players[1:]
        created = await host.create(title_id)
        for guest in guests:
            await guest.join(created["invite_code"])
        for p in players:
            p.count_from(true_ms())
        fleet.start()

        await host.control("play")
        sought = await host.control("seek", position=42.0)
        seq = sought["state"]["seq"]
        assert await fleet.wait_for(lambda: fleet.have_seq(created["party_id"], seq), SETTLE_TIMEOUT_S)
        assert await fleet.wait_for(lambda: fleet.settled(WITHIN_MS), SETTLE_TIMEOUT_S), fleet.errors()

        fleet.sampling = True
        assert await fleet.wait_for(lambda: len(fleet.samples) >= 20 * PLAYERS, SETTLE_TIMEOUT_S)
        fleet.sampling = False
        worst = max(abs(s.error_ms) for s in fleet.samples)
        assert worst <= WITHIN_MS, sorted((round(s.error_ms, 1), s.player) for s in fleet.samples)[-5:]
        assert {s.seq for s in fleet.samples} == {seq}

        for p in players:
            assert p.out_of_order == 0, (p.name, [x.seq for x in p.arrivals])
            assert p.missed() == [], (p.name, p.missed(), [x.seq for x in p.arrivals])
            assert [x.seq for x in p.arrivals][-2:] == [seq - 1, seq], p.arrivals
            assert p.state["position"] == 42.0 and p.state["playing"] is True
    finally:
        await fleet.stop()
