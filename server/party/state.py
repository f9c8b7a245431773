"""The rules of one watch party as pure functions over its record, so every one of them is
testable without a server, and the service only loads, applies and saves.

A record holds the authoritative playback state (`position` seconds at server time `at_ms`,
moving at `rate` while `playing`, with a `seq` that grows by one per change), the seats,
the host, and the buffering wait. Every function takes the current server time `now` (ms).
"""

from __future__ import annotations

from typing import Any

Party = dict[str, Any]

MAX_MEMBERS = 20
BUFFER_WAIT_MS = 8_000  # the longest a party waits for members who buffer
LAGGARD_COOLDOWN_MS = 60_000  # a member left behind cannot stop the party again this soon
SEAT_GRACE_MS = 60_000  # a dropped socket keeps its seat this long
HOST_GRACE_MS = 10_000  # a dropped host keeps the controls this long
IDLE_END_MS = 2 * 3600 * 1000  # a party nobody touches while paused ends after this
MIN_RATE, MAX_RATE = 0.5, 2.0
MAX_POSITION = 48 * 3600.0
SYSTEM = "party"  # `by` of the changes the server makes itself


class Refused(Exception):
    """A change the rules do not allow: `code` says which rule."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def new_party(party_id: str, content: dict[str, Any], host: dict[str, Any], *, everyone_controls: bool,
              invite_hash: str, invite_expires_ms: int, now: int) -> Party:
    return {
        "id": party_id, "content": content, "host_id": host["user_id"], "everyone_controls": everyone_controls,
        "invite_hash": invite_hash, "invite_expires_ms": invite_expires_ms, "created_ms": now,
        "state": {"playing": False, "position": 0.0, "rate": 1.0, "at_ms": now, "seq": 1, "by": host["user_id"]},
        "resume": False, "buffering": {}, "waiting_until_ms": None, "laggards": {},
        "members": {host["user_id"]: seat(host, now)}, "last_active_ms": now,
    }


def seat(member: dict[str, Any], now: int) -> dict[str, Any]:
    return {"joined_ms": now, "display_name": member["display_name"], "connected": True,
            "proc": member["proc"], "socket": member["socket"], "dropped_ms": None,
            "playback_id": member["playback_id"]}


def position_at(state: dict[str, Any], now: int) -> float:
    """Where the party is at server time `now`."""
    if not state["playing"]:
        return float(state["position"])
    return min(MAX_POSITION, float(state["position"]) + state["rate"] * (now - state["at_ms"]) / 1000)


def public_state(party: Party) -> dict[str, Any]:
    return {"party_id": party["id"], **party["state"], "buffering": sorted(party["buffering"]),
            "waiting_until_ms": party["waiting_until_ms"]}


def members_view(party: Party) -> list[dict[str, Any]]:
    ordered = sorted(party["members"].items(), key=lambda item: item[1]["joined_ms"])
    return [{"user_id": uid, "display_name": m["display_name"], "connected": m["connected"],
             "host": uid == party["host_id"]} for uid, m in ordered]


def _set_state(party: Party, now: int, by: str, **changes: Any) -> None:
    state = party["state"]
    state.update(changes)
    state["at_ms"] = now
    state["seq"] += 1
    state["by"] = by
    party["last_active_ms"] = now


def _end_wait(party: Party, now: int) -> None:
    for user_id in party["buffering"]:
        party["laggards"][user_id] = now
    party["buffering"] = {}
    party["waiting_until_ms"] = None


def control(party: Party, user_id: str, action: str, now: int, *, position: float | None = None,
            rate: float | None = None, based_on: int | None = None) -> bool:
    """Apply a member's control; False when it changes nothing (a play while playing)."""
    if user_id not in party["members"]:
        raise Refused("not_in_party")
    if user_id != party["host_id"] and not party["everyone_controls"]:
        raise Refused("not_host")
    state = party["state"]
    if based_on is not None and based_on < state["seq"]:
        raise Refused("stale_state")
    here = position_at(state, now) if position is None else min(MAX_POSITION, max(0.0, position))
    if action == "play":
        if state["playing"] and position is None:
            return False
        _end_wait(party, now)
        party["resume"] = False
        _set_state(party, now, user_id, playing=True, position=here)
    elif action == "pause":
        if not state["playing"] and position is None and not party["resume"]:
            return False
        _end_wait(party, now)
        party["resume"] = False
        _set_state(party, now, user_id, playing=False, position=here)
    elif action == "seek":
        if position is None:
            raise Refused("position_required")
        _set_state(party, now, user_id, position=here)
    elif action == "rate":
        if rate is None or not MIN_RATE <= rate <= MAX_RATE:
            raise Refused("rate_out_of_range")
        _set_state(party, now, user_id, position=position_at(state, now), rate=rate)
    else:
        raise Refused("unknown_action")
    return True


def buffering(party: Party, user_id: str, now: int) -> bool:
    """A member stalls: the party pauses for everyone, within BUFFER_WAIT_MS."""
    if user_id not in party["members"]:
        raise Refused("not_in_party")
    state = party["state"]
    waiting = party["waiting_until_ms"] is not None
    if not state["playing"] and not waiting:
        return False  # paused anyway: nothing to wait for
    if now - party["laggards"].get(user_id, -LAGGARD_COOLDOWN_MS) < LAGGARD_COOLDOWN_MS:
        return False  # left behind recently: it catches up by seeking, the party plays on
    if user_id in party["buffering"]:
        return False
    party["buffering"][user_id] = now
    if not waiting:
        party["resume"] = True
        party["waiting_until_ms"] = now + BUFFER_WAIT_MS
        _set_state(party, now, SYSTEM, playing=False, position=position_at(state, now))
    else:
        party["state"]["seq"] += 1  # the list of members waited for changed
        party["state"]["by"] = SYSTEM
    return True


def ready(party: Party, user_id: str, now: int) -> bool:
    """A member can play again: when nobody is buffering any more, the party resumes."""
    if user_id not in party["members"]:
        raise Refused("not_in_party")
    if party["buffering"].pop(user_id, None) is None:
        return False
    if not party["buffering"] and party["resume"]:
        party["resume"] = False
        party["waiting_until_ms"] = None
        _set_state(party, now, SYSTEM, playing=True)
    else:
        party["state"]["seq"] += 1
        party["state"]["by"] = SYSTEM
    return True


def join(party: Party, member: dict[str, Any], now: int) -> str:
    """'joined' for a new seat, 'reconnected' for a member taking theirs back."""
    user_id = member["user_id"]
    current = party["members"].get(user_id)
    if current is not None:
        current.update(connected=True, proc=member["proc"], socket=member["socket"], dropped_ms=None,
                       playback_id=member["playback_id"])
        party["last_active_ms"] = now
        return "reconnected"
    if len(party["members"]) >= MAX_MEMBERS:
        raise Refused("party_full")
    party["members"][user_id] = seat(member, now)
    party["last_active_ms"] = now
    return "joined"


def dropped(party: Party, user_id: str, proc: str, socket: str, now: int) -> bool:
    """The member's socket went away: only the socket that holds the seat counts (an old
    socket timing out after its owner reconnected elsewhere changes nothing)."""
    member = party["members"].get(user_id)
    if member is None or not member["connected"] or (member["proc"], member["socket"]) != (proc, socket):
        return False
    member.update(connected=False, dropped_ms=now)
    party["buffering"].pop(user_id, None)
    return True


def leave(party: Party, user_id: str, now: int) -> dict[str, Any] | None:
    """Remove the seat; the longest-present member takes over from a host who leaves."""
    member = party["members"].pop(user_id, None)
    if member is None:
        return None
    party["buffering"].pop(user_id, None)
    party["laggards"].pop(user_id, None)
    if not party["buffering"] and party["waiting_until_ms"] is not None:
        ready_all(party, now)
    if party["host_id"] == user_id and party["members"]:
        party["host_id"] = successor(party)
    party["last_active_ms"] = now
    return member


def ready_all(party: Party, now: int) -> None:
    """The wait is over (limit reached, or nobody left to wait for): play on."""
    resume = party["resume"]
    _end_wait(party, now)
    party["resume"] = False
    if resume:
        _set_state(party, now, SYSTEM, playing=True)


def successor(party: Party) -> str:
    """The member present longest, preferring one whose socket is connected."""
    return min(party["members"].items(), key=lambda item: (not item[1]["connected"], item[1]["joined_ms"]))[0]


def hand_over(party: Party, user_id: str, to: str) -> None:
    if user_id != party["host_id"]:
        raise Refused("not_host")
    if to not in party["members"]:
        raise Refused("not_in_party")
    party["host_id"] = to


def next_deadline(party: Party, now: int) -> int:
    """When `expire` has something to do next. Connected seats add no deadline: a process
    that goes away is noticed once, by its presence running out, and its parties are then
    made due (storage/party/store.py), so holding parties costs nothing per party."""
    times = [party["last_active_ms"] + IDLE_END_MS]
    if party["waiting_until_ms"] is not None:
        times.append(party["waiting_until_ms"])
    for uid, member in party["members"].items():
        if member["dropped_ms"] is not None:
            times.append(member["dropped_ms"] + SEAT_GRACE_MS)
            if uid == party["host_id"]:
                times.append(member["dropped_ms"] + HOST_GRACE_MS)
    return min(times)


def expire(party: Party, now: int, alive: set[str]) -> list[dict[str, Any]]:
    """Apply every rule that time alone triggers; the seats removed, for their streams to stop.

    `alive` names the processes whose sockets still count: a seat held through a process
    that died is treated as dropped at the moment that is noticed."""
    for member in party["members"].values():
        if member["connected"] and member["proc"] not in alive:
            member.update(connected=False, dropped_ms=now)
    if party["waiting_until_ms"] is not None and now >= party["waiting_until_ms"]:
        ready_all(party, now)
    removed = []
    for uid, member in list(party["members"].items()):
        if member["dropped_ms"] is not None and now >= member["dropped_ms"] + SEAT_GRACE_MS:
            leave(party, uid, now)
            removed.append({"user_id": uid, **member})
    host = party["members"].get(party["host_id"])
    if (host is not None and host["dropped_ms"] is not None and now >= host["dropped_ms"] + HOST_GRACE_MS
            and any(m["connected"] for m in party["members"].values())):
        party["host_id"] = successor(party)
    for uid in [uid for uid, member in party["members"].items() if not member["connected"]]:
        party["buffering"].pop(uid, None)
    if party["waiting_until_ms"] is not None and not party["buffering"]:
        ready_all(party, now)
    if party["state"]["playing"]:
        party["last_active_ms"] = max(party["last_active_ms"], now - IDLE_END_MS // 2)
    return removed


def ended(party: Party, now: int) -> str | None:
    """Why the party is over, if it is."""
    if not party["members"]:
        return "empty"
    if not party["state"]["playing"] and now - party["last_active_ms"] >= IDLE_END_MS:
        return "idle"
    return None
