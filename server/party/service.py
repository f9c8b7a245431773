"""Watch parties: seats, the authoritative playback state, host rules, buffering waits,
chat and reactions, over any number of processes.

Every change runs `load → apply a rule (server.party.state) → commit`, where the commit is
one atomic step in the store: a compare-and-set on the record's version, the party's next
deadline, and the publication of its events. A change that lost the race to another is
applied again to the newer record. So changes are applied one at a time and their events
leave in the order they were applied, without a lock to wait on. Events go out on one
pub/sub channel that every process (this one included) relays to its own sockets: one
path, one order, for every member wherever their socket is.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import hashlib
import logging
import random
import secrets
import time
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from server.catalog.browse import CatalogService
from server.core import errors
from server.core.ids import new_id
from server.core.permissions import Principal
from server.core.turns import Turns
from server.identity.accounts import AccountService
from server.media.access import PLAYBACK_CHANNEL
from server.media.playback import PlaybackService
from server.party import state as rules
from storage.party.store import PartyStore
from storage.state.pubsub import PubSub
from storage.state.ratelimit import RateLimiter

log = logging.getLogger("nameless.party")

EVENTS_CHANNEL = "party.events"  # {"party_id", "events": [[name, data], ...]}
INVITE_TTL_MS = 24 * 3600 * 1000
RECORD_TTL_MS = rules.IDLE_END_MS + 24 * 3600 * 1000  # a safety net: the sweeper ends parties first
CHANGE_ATTEMPTS = 200  # compare-and-set rounds lost to other processes before a change gives up
CHANGE_BACKOFF_S = 0.002  # the longest random pause after a lost round
SWEEP_INTERVAL_S = 0.25
ALIVE_TTL_MS = 15_000  # a process silent this long is taken for dead, and its seats for dropped
ALIVE_REFRESH_S = 2.0  # also how often this process looks for others whose presence ran out
DROP_RETRY_S = (0.05, 2.0)  # first and longest wait before a failed seat drop is tried again
STOP_FLUSH_S = 3.0  # how long a stopping process gives its pending seat drops
CHAT_MAX_CHARS = 500
CHAT_LIMIT = (10, 10)  # messages per window of seconds, per member
REACTIONS = frozenset({"👍", "👎", "😂", "😮", "😢", "😍", "🔥", "👏", "🎉", "😱", "🍿", "❤️"})
REACT_LIMIT = (20, 10)

Events = list[tuple[str, dict[str, Any]]]


def invite_hash(code: str) -> str:
    """Invite codes are kept only as their hash: the store never holds a usable code."""
    return hashlib.sha256(code.encode()).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


def clean_text(text: str) -> str:
    """Chat is data: no control or format characters (bidi overrides included), trimmed."""
    kept = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch)[0] != "C")
    return kept.strip()


class PartyService:
    def __init__(self, store: PartyStore, playback: PlaybackService, catalog: CatalogService,
                 accounts: AccountService, pubsub: PubSub, limiter: RateLimiter,
                 process_id: str, clock: Callable[[], int] = now_ms) -> None:
        self._store = store
        self._playback = playback
        self._catalog = catalog
        self._accounts = accounts
        self._pubsub = pubsub
        self._limiter = limiter
        self.process_id = process_id
        self._clock = clock
        self._sweeper: asyncio.Task[None] | None = None
        self._alive: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], Awaitable[None]] | None = None
        self._turns = Turns()
        self._drops: dict[str, dict[str, str]] = {}  # party id -> {user id: socket} not yet recorded
        self._dropping: dict[str, asyncio.Task[None]] = {}
        self._stopped = False

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        await self._store.mark_alive(self.process_id, ALIVE_TTL_MS)  # before any seat names this process
        self._unsubscribe = await self._pubsub.subscribe(PLAYBACK_CHANNEL, self._on_playback_ended)
        self._sweeper = asyncio.ensure_future(self._sweep_forever())
        self._alive = asyncio.ensure_future(self._keep_alive())

    async def stop(self) -> None:
        """Bounded: presence is withdrawn first (this process's parties become due at once,
        so another process takes its seats for dropped at its next sweep instead of after
        ALIVE_TTL_MS); then the drops already queued get STOP_FLUSH_S to be recorded."""
        self._stopped = True
        for task in (self._sweeper, self._alive):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._unsubscribe is not None:
            await self._unsubscribe()
        with contextlib.suppress(Exception):
            await self._store.withdraw(self.process_id)
        pending = list(self._dropping.values())
        if pending:
            _, late = await asyncio.wait(pending, timeout=STOP_FLUSH_S)
            for task in late:
                task.cancel()
            if late:
                log.warning("party seat drops left to presence expiry", extra={"parties": len(late)})

    # --- joining and leaving --------------------------------------------------------

    async def create(self, principal: Principal, socket: str, content_id: str, profile_id: str | None,
                     everyone_controls: bool) -> dict[str, Any]:
        """The creator is the host and the first seat; their stream starts like any other."""
        title, episode = await self._catalog.resolve_content(content_id)
        started = await self._playback.start(principal.user_id, principal.session_id, content_id, profile_id)
        now = self._clock()
        party_id, code = new_id(), secrets.token_urlsafe(12)  # 96 random bits
        content = {"content_id": content_id, "title_id": str(title["_id"]), "title": title["title"],
                   "episode": episode.get("name") if episode else None}
        host = await self._member(principal, socket, started["session_id"])
        party = rules.new_party(party_id, content, host, everyone_controls=everyone_controls,
                                invite_hash=invite_hash(code), invite_expires_ms=now + INVITE_TTL_MS, now=now)
        await self._store.commit(party_id, 0, party, RECORD_TTL_MS, due_ms=rules.next_deadline(party, now),
                                 message=None, procs=[self.process_id])
        await self._store.put_index("invite", party["invite_hash"], party_id, INVITE_TTL_MS)
        await self._store.put_index("seat", started["session_id"], party_id, RECORD_TTL_MS)
        return {**self._view(party), "invite_code": code, "invite_expires_ms": party["invite_expires_ms"],
                "playback": started}

    async def party_for_invite(self, code: str) -> str:
        """The party an invite opens (one read), or 404 when it is not valid."""
        party_id = await self._store.index("invite", invite_hash(code))
        if party_id is None:
            raise errors.NotFound("This invite is not valid (it may have expired).", code="invite_invalid")
        return party_id

    async def join(self, principal: Principal, socket: str, party_id: str, *, by_invite: bool,
                   profile_id: str | None) -> dict[str, Any]:
        """A new seat by invite (`party_for_invite` gives the party), or a member's own seat
        back by party id (after a dropped socket, on any process): the reply carries the
        current state to start in sync."""
        record = await self._store.load(party_id)
        if record is None or (not by_invite and principal.user_id not in record[0]["members"]):
            raise errors.NotFound("No such party.", code="party_not_found")
        party = record[0]
        seat = party["members"].get(principal.user_id)
        if seat is None and len(party["members"]) >= rules.MAX_MEMBERS:
            raise errors.Conflict("This party is full.", code="party_full")
        started = None
        if seat is not None and seat.get("playback_id"):
            started = await self._playback.relink(principal.user_id, principal.session_id, seat["playback_id"])
        if started is None:
            started = await self._playback.start(principal.user_id, principal.session_id,
                                                 party["content"]["content_id"], profile_id)
        member = await self._member(principal, socket, started["session_id"])
        try:
            party = await self._change(party_id, lambda p, now: self._join_events(p, member, now), record=record)
        except errors.ApiError:
            if seat is None or seat.get("playback_id") != started["session_id"]:
                await self._playback.stop(principal.user_id, started["session_id"])
            raise
        await self._store.put_index("seat", started["session_id"], party_id, RECORD_TTL_MS)
        return {**self._view(party), "playback": started}

    def _join_events(self, party: rules.Party, member: dict[str, Any], now: int) -> Events:
        event = rules.join(party, member, now)
        return [("party.member", {"user_id": member["user_id"], "display_name": member["display_name"],
                                  "event": event})]

    async def leave(self, user_id: str, party_id: str) -> None:
        """Leaving gives up the seat and its stream slot."""
        removed: list[dict[str, Any]] = []

        def apply(party: rules.Party, now: int) -> Events:
            seat = rules.leave(party, user_id, now)
            if seat is None:
                raise errors.NotFound("You are not in this party.", code="not_in_party")
            removed[:] = [{"user_id": user_id, **seat}]
            return [("party.member", {"user_id": user_id, "display_name": seat["display_name"], "event": "left"})]

        party = await self._change(party_id, apply)
        await self._release(removed)
        if not party["members"]:
            await self.end(party_id, "empty")

    def disconnected(self, user_id: str, party_id: str, socket: str) -> None:
        """The socket that held the seat went away: the seat waits SEAT_GRACE_MS for it.

        Queued, not awaited: when many sockets go at once (a network blip, a proxy restart)
        the drops of one party are recorded together in one change, and a change that fails
        (Redis busy, the party's lock held) is tried again, so no drop is lost."""
        if self._stopped:
            return  # this process withdrew its presence: the others take its seats for dropped
        self._drops.setdefault(party_id, {})[user_id] = socket
        if party_id not in self._dropping:
            self._dropping[party_id] = asyncio.ensure_future(self._record_drops(party_id))

    async def _record_drops(self, party_id: str) -> None:
        wait = DROP_RETRY_S[0]
        try:
            while party_id in self._drops:
                batch = self._drops.pop(party_id)
                try:
                    await self._change(party_id, functools.partial(self._drop_events, batch))
                except errors.NotFound:
                    pass  # the party ended meanwhile: nothing to record
                except Exception as exc:
                    log.warning("party seat drop not recorded yet; retrying",
                                extra={"party_id": party_id, "seats": len(batch), "error": type(exc).__name__})
                    pending = self._drops.setdefault(party_id, {})
                    for user_id, socket in batch.items():
                        pending.setdefault(user_id, socket)  # a newer drop of that user wins
                    await asyncio.sleep(wait)
                    wait = min(wait * 2, DROP_RETRY_S[1])
        finally:
            del self._dropping[party_id]

    def _drop_events(self, batch: dict[str, str], party: rules.Party, now: int) -> Events:
        events: Events = []
        for user_id, socket in batch.items():
            if rules.dropped(party, user_id, self.process_id, socket, now):
                events.append(("party.member", {"user_id": user_id,
                                                "display_name": party["members"][user_id]["display_name"],
                                                "event": "disconnected"}))
        if events and party["waiting_until_ms"] is not None and not party["buffering"]:
            rules.ready_all(party, now)
        return events

    # --- playback control -----------------------------------------------------------

    async def control(self, user_id: str, party_id: str, action: str, *, position: float | None,
                      rate: float | None, based_on: int | None) -> dict[str, Any]:
        party = await self._change(party_id, lambda p, now: self._ruled(
            rules.control, p, user_id, action, now, position=position, rate=rate, based_on=based_on))
        return rules.public_state(party)

    async def buffering(self, user_id: str, party_id: str) -> dict[str, Any]:
        party = await self._change(party_id, lambda p, now: self._ruled(rules.buffering, p, user_id, now))
        return rules.public_state(party)

    async def ready(self, user_id: str, party_id: str) -> dict[str, Any]:
        party = await self._change(party_id, lambda p, now: self._ruled(rules.ready, p, user_id, now))
        return rules.public_state(party)

    async def hand_over(self, user_id: str, party_id: str, to: str) -> str:
        party = await self._change(party_id, lambda p, now: self._ruled(rules.hand_over, p, user_id, to))
        return str(party["host_id"])

    async def set_everyone_controls(self, user_id: str, party_id: str, everyone: bool) -> bool:
        def apply(party: rules.Party, now: int) -> Events:
            if party["host_id"] != user_id:
                raise self._refusal("not_host")
            party["everyone_controls"] = everyone
            return [("party.settings", {"everyone_controls": everyone})]

        await self._change(party_id, apply)
        return everyone

    def _ruled(self, rule: Callable[..., Any], party: rules.Party, *args: Any, **kwargs: Any) -> Events:
        try:
            rule(party, *args, **kwargs)
        except rules.Refused as refused:
            raise self._refusal(refused.code, party) from None
        return []

    @staticmethod
    def _refusal(code: str, party: rules.Party | None = None) -> errors.ApiError:
        if code == "stale_state" and party is not None:
            return errors.Conflict("The party changed since; here is its state.", code=code,
                                   details={"state": rules.public_state(party)})
        if code == "not_host":
            return errors.Forbidden("Only the host controls this party.", code=code)
        if code == "not_in_party":
            return errors.NotFound("You are not in this party.", code=code)
        if code == "party_full":
            return errors.Conflict("This party is full.", code=code)
        fields = {"position_required": {"position": "required for a seek"},
                  "rate_out_of_range": {"rate": f"from {rules.MIN_RATE} to {rules.MAX_RATE}"}}
        return errors.ValidationFailed(details={"fields": fields.get(code, {"action": code})})

    # --- chat and reactions ---------------------------------------------------------

    async def chat(self, user_id: str, party_id: str, text: str) -> str:
        text = clean_text(text)
        if not text or len(text) > CHAT_MAX_CHARS:
            raise errors.ValidationFailed(f"A message has 1 to {CHAT_MAX_CHARS} characters.",
                                          details={"fields": {"text": f"1 to {CHAT_MAX_CHARS} characters"}})
        return await self._say(user_id, party_id, "party.chat", {"text": text}, CHAT_LIMIT)

    async def react(self, user_id: str, party_id: str, emoji: str) -> str:
        if emoji not in REACTIONS:
            raise errors.ValidationFailed("Not one of the party's reactions.",
                                          details={"fields": {"emoji": "one of " + " ".join(sorted(REACTIONS))}})
        return await self._say(user_id, party_id, "party.react", {"emoji": emoji}, REACT_LIMIT)

    async def _say(self, user_id: str, party_id: str, event: str, body: dict[str, Any],
                   limit: tuple[int, int]) -> str:
        decision = await self._limiter.hit(f"{event}:{user_id}", *limit)
        if not decision.allowed:
            raise errors.RateLimited(decision.retry_after, "Slow down a little.")
        record = await self._store.load(party_id)
        if record is None or user_id not in record[0]["members"]:
            raise errors.NotFound("You are not in this party.", code="not_in_party")
        member = record[0]["members"][user_id]
        message_id = new_id()
        await self._publish(party_id, [(event, {"id": message_id, "user_id": user_id,
                                                "display_name": member["display_name"], **body,
                                                "at_ms": self._clock()})])
        return message_id

    # --- reading ----------------------------------------------------------------------

    async def invite(self, code: str) -> dict[str, Any]:
        """What a deep link shows before joining: the title, the host, how many are in."""
        party_id = await self._store.index("invite", invite_hash(code))
        record = await self._store.load(party_id) if party_id else None
        if record is None:
            raise errors.NotFound("This invite is not valid (it may have expired).", code="invite_invalid")
        party = record[0]
        host = party["members"].get(party["host_id"], {})
        return {"party_id": party["id"], **party["content"], "host": host.get("display_name"),
                "members": len(party["members"]), "invite_expires_ms": party["invite_expires_ms"]}

    def _view(self, party: rules.Party) -> dict[str, Any]:
        return {"party_id": party["id"], "content": party["content"], "state": rules.public_state(party),
                "members": rules.members_view(party), "host_id": party["host_id"],
                "everyone_controls": party["everyone_controls"]}

    async def _member(self, principal: Principal, socket: str, playback_id: str) -> dict[str, Any]:
        user = await self._accounts.get(principal.user_id)
        return {"user_id": principal.user_id, "display_name": user.get("display_name") or "Viewer",
                "proc": self.process_id, "socket": socket, "playback_id": playback_id}

    # --- the one way a party changes -------------------------------------------------

    async def _change(self, party_id: str, apply: Callable[[rules.Party, int], Events], *,
                      record: tuple[rules.Party, int] | None = None) -> rules.Party:
        """Apply and commit; a round lost to another process is applied again to the newer
        record (`apply` must not keep anything from a round it did not win). `record`, when
        the caller has just read the party, saves the first read."""
        async with self._turns.of(party_id):  # this process's changes to the party queue here
            for _ in range(CHANGE_ATTEMPTS):
                if record is None:
                    record = await self._store.load(party_id)
                if record is None:
                    raise errors.NotFound("No such party.", code="party_not_found")
                before, version = record
                party = copy.deepcopy(before)
                now = self._clock()
                events = apply(party, now)
                if party == before:
                    return party
                events = self._diff(before, party) + events
                procs = {m["proc"] for m in party["members"].values() if m["connected"]}
                if await self._store.commit(party_id, version, party, RECORD_TTL_MS,
                                            due_ms=rules.next_deadline(party, now),
                                            message=self._message(party_id, events), procs=sorted(procs)):
                    return party
                record = None
                await asyncio.sleep(random.uniform(0, CHANGE_BACKOFF_S))
        raise errors.Conflict("The party is busy; try again.", code="party_busy")

    @staticmethod
    def _diff(before: rules.Party, after: rules.Party) -> Events:
        events: Events = []
        if after["host_id"] != before["host_id"]:
            events.append(("party.host", {"host_id": after["host_id"], "by": before["host_id"]}))
        if after["state"]["seq"] != before["state"]["seq"]:
            events.append(("party.state", rules.public_state(after)))
        return events

    @staticmethod
    def _message(party_id: str, events: Events) -> dict[str, Any] | None:
        if not events:
            return None
        return {"party_id": party_id, "events": [[name, {"party_id": party_id, **data}] for name, data in events]}

    async def _publish(self, party_id: str, events: Events) -> None:
        """Events that change no record (chat, reactions, the end) go out directly."""
        message = self._message(party_id, events)
        if message is not None:
            await self._pubsub.publish(EVENTS_CHANNEL, message)

    # --- time -------------------------------------------------------------------------

    async def _keep_alive(self) -> None:
        """This process's presence, refreshed on its own: a sweep that runs long must never
        let it lapse, or the other processes would drop seats whose sockets are fine. The
        same beat reaps the processes whose presence ran out (their parties become due)."""
        while True:
            try:
                if not await self._store.mark_alive(self.process_id, ALIVE_TTL_MS):
                    log.warning("party presence had lapsed; other processes may have dropped seats held here")
                reaped = await self._store.reap()
                if reaped:
                    log.info("party seats of stopped processes to be dropped", extra={"processes": len(reaped)})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("party presence refresh failed")
            await asyncio.sleep(ALIVE_REFRESH_S)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                for party_id in await self._store.claim_due(self._clock(), 2_000, 100):
                    await self.tick(party_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("party sweep failed")
            await asyncio.sleep(SWEEP_INTERVAL_S)

    async def tick(self, party_id: str) -> None:
        """Apply what time alone decides: waits that ran out, dropped seats and hosts, the end."""
        record = await self._store.load(party_id)
        if record is None:
            await self._store.schedule(party_id, None)
            return
        procs = {m["proc"] for m in record[0]["members"].values() if m["connected"]}
        alive = {p for p in procs if p == self.process_id or await self._store.alive(p)}
        removed: list[dict[str, Any]] = []

        def apply(party: rules.Party, now: int) -> Events:
            events: Events = []
            before = {uid: m["connected"] for uid, m in party["members"].items()}
            removed[:] = rules.expire(party, now, alive)
            for seat in removed:
                events.append(("party.member", {"user_id": seat["user_id"], "display_name": seat["display_name"],
                                                "event": "left"}))
            for uid, member in party["members"].items():
                if before.get(uid) and not member["connected"]:
                    events.append(("party.member", {"user_id": uid, "display_name": member["display_name"],
                                                    "event": "disconnected"}))
            return events

        try:
            party = await self._change(party_id, apply)
        except errors.NotFound:
            await self._store.schedule(party_id, None)
            return
        await self._release(removed)
        reason = rules.ended(party, self._clock())
        if reason is not None:
            await self.end(party_id, reason)
        else:
            await self._store.schedule(party_id, rules.next_deadline(party, self._clock()))

    async def end(self, party_id: str, reason: str) -> None:
        record = await self._store.load(party_id)
        if record is None:
            return
        party = record[0]
        await self._store.drop_index("invite", party["invite_hash"])
        await self._store.delete(party_id)
        await self._publish(party_id, [("party.ended", {"reason": reason})])
        await self._release([{"user_id": uid, **m} for uid, m in party["members"].items()])

    async def _release(self, seats: list[dict[str, Any]]) -> None:
        """Seats given up end their streams (freeing the slots)."""
        for seat in seats:
            if seat.get("playback_id"):
                await self._store.drop_index("seat", seat["playback_id"])
                with contextlib.suppress(errors.NotFound):
                    await self._playback.stop(seat["user_id"], seat["playback_id"])

    async def _on_playback_ended(self, message: dict[str, Any]) -> None:
        """Ending the party's content on a device gives up that member's seat."""
        session_id, user_id = message.get("session_id"), message.get("user_id")
        if not isinstance(session_id, str) or not isinstance(user_id, str):
            return
        party_id = await self._store.index("seat", session_id)
        if party_id is None:
            return
        record = await self._store.load(party_id)
        seat = record[0]["members"].get(user_id) if record else None
        if seat is None or seat.get("playback_id") != session_id:
            return
        with contextlib.suppress(errors.NotFound):
            await self.leave(user_id, party_id)
        if await self._store.load(party_id) is not None:
            await self.tick(party_id)
