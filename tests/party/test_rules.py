"""The party's rules as pure functions: order, waits, seats and hosts at given times."""

from __future__ import annotations

import pytest

from server.party import state as rules


def member(uid: str, proc: str = "p1") -> dict:
    return {"user_id": uid, "display_name": uid, "proc": proc, "socket": f"s-{uid}", "playback_id": f"pb-{uid}"}


def party(*guests: str, now: int = 0) -> dict:
    p = rules.new_party("x", {"content_id": "c"}, member("host"), everyone_controls=False, invite_hash="h",
                        invite_expires_ms=10**12, now=now)
    for i, uid in enumerate(guests):
        rules.join(p, member(uid), now + i + 1)
    return p


def test_position_moves_only_while_playing_at_the_rate() -> None:
    p = party()
    rules.control(p, "host", "play", 1_000, position=10.0)
    rules.control(p, "host", "rate", 3_000, rate=2.0)
    assert rules.position_at(p["state"], 3_000) == 12.0
    assert rules.position_at(p["state"], 4_000) == 14.0
    rules.control(p, "host", "pause", 4_000)
    assert rules.position_at(p["state"], 60_000) == 14.0


def test_a_change_based_on_an_older_state_is_refused() -> None:
    p = party()
    rules.control(p, "host", "play", 1)
    seq = p["state"]["seq"]
    rules.control(p, "host", "seek", 2, position=5, based_on=seq)
    with pytest.raises(rules.Refused, match="stale_state"):
        rules.control(p, "host", "seek", 3, position=9, based_on=seq)
    assert p["state"]["position"] == 5


def test_buffering_waits_within_the_limit_then_plays_on() -> None:
    p = party("a", "b")
    rules.control(p, "host", "play", 0, position=0.0)
    rules.buffering(p, "a", 1_000)
    assert p["state"]["playing"] is False and p["state"]["position"] == 1.0
    assert rules.next_deadline(p, 1_000) <= 1_000 + rules.BUFFER_WAIT_MS
    rules.expire(p, 1_000 + rules.BUFFER_WAIT_MS, {"p1"})
    assert p["state"]["playing"] is True and p["buffering"] == {} and p["state"]["position"] == 1.0
    assert rules.buffering(p, "a", 1_000 + rules.BUFFER_WAIT_MS + 5) is False  # left behind: no second stop


def test_the_longest_present_connected_member_succeeds_the_host() -> None:
    p = party("a", "b")
    rules.dropped(p, "a", "p1", "s-a", 10)
    rules.leave(p, "host", 20)
    assert p["host_id"] == "b"  # a is earlier but its socket is gone
    assert rules.dropped(p, "b", "p1", "old-socket", 30) is False  # only the socket that holds the seat


def test_seats_of_a_dead_process_drop_then_go() -> None:
    p = party("a")
    p["members"]["a"]["proc"] = "p2"
    rules.expire(p, 100, {"p1"})
    assert p["members"]["a"]["connected"] is False
    removed = rules.expire(p, 100 + rules.SEAT_GRACE_MS, {"p1"})
    assert [r["user_id"] for r in removed] == ["a"] and list(p["members"]) == ["host"]
    rules.leave(p, "host", 200)
    assert rules.ended(p, 200) == "empty"


def test_connected_seats_add_no_deadline_dropped_ones_and_waits_do() -> None:
    p = party("a", "b", now=1_000)
    idle_end = p["last_active_ms"] + rules.IDLE_END_MS
    assert rules.next_deadline(p, 5_000) == idle_end  # nothing to check while every seat is connected
    rules.control(p, "host", "play", 6_000)
    rules.buffering(p, "a", 7_000)
    assert rules.next_deadline(p, 7_000) == 7_000 + rules.BUFFER_WAIT_MS
    rules.ready(p, "a", 8_000)
    rules.dropped(p, "b", "p1", "s-b", 9_000)
    assert rules.next_deadline(p, 9_000) == 9_000 + rules.SEAT_GRACE_MS
