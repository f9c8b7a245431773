"""Simulated watch-party players: the harness of tests/party/test_sync.py and bench/party_sync.py.

Each `Player` is a real python-socketio `AsyncClient` (websocket transport) on `/party`
speaking the protocol of docs/watch-party.md, with three things a real viewer has and a
loopback test does not:

- **its own clock**: `local_ms = true_ms + (true_ms - epoch_ms) * drift_ppm * 1e-6 + skew_ms`
  (the `true_ms * (1 + drift) + skew` of a crystal, counted from the moment the clock was
  made, so the skew is the offset at that moment). True time is this process's
  `time.time()`; the server runs on the same machine, so its clock is true time too.
- **a network**: every message waits a one-way delay (`Link`: base plus jitter) before it is
  sent and after it is read, in order in each direction as over TCP, so a later message
  never overtakes an earlier one.
- **a playhead** driven by the local clock (so drift matters), with play, pause, seek (a
  seek stalls the playhead for a seek latency), rate and buffering.

A player syncs its clock as the doc says (8 `time.sync` round trips, the 3 with the lowest
round trip, their median offset; again every 30 s), follows every `party.state` and applies
a correction `Policy` on a timer of its local clock: `PartyPolicy` is the doc's policy,
`JellyfinPolicy` is Jellyfin SyncPlay's (jellyfin-web `PlaybackCore.syncPlaybackTime`), and
`NoCorrection` applies each state once and never corrects.

What is measured (`Fleet`): the error of a player at true time t is its playhead at its
local time of t minus the party's true position, the newest authoritative state
extrapolated with true time; every `party.state` with the true time its bytes were read
(`raw_ms`) and the time it reached the player after the simulated network (`delivered_ms`);
states that arrived after a newer one (`out_of_order`) and states never received
(`missed`). The library asserts nothing: tests and the benchmark decide what is good.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio

NAMESPACE = "/party"
SYNC_SAMPLES = 8  # time.sync round trips per clock sync (docs/watch-party.md)
SYNC_KEEP = 3  # the samples with the lowest round trip that are kept
SYNC_EVERY_S = 30.0
REQUEST_TIMEOUT_S = 30.0


def true_ms() -> float:
    """True time: this process's wall clock, which is also the server's (same machine)."""
    return time.time() * 1000.0


# --- the player's clock and network ---------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """A player's clock: off by `skew_ms` when made, running fast by `drift_ppm`."""

    skew_ms: float = 0.0
    drift_ppm: float = 0.0
    epoch_ms: float = field(default_factory=true_ms)

    def local_ms(self, at_true_ms: float | None = None) -> float:
        t = true_ms() if at_true_ms is None else at_true_ms
        return t + (t - self.epoch_ms) * self.drift_ppm * 1e-6 + self.skew_ms

    @classmethod
    def random(cls, rng: random.Random, max_skew_ms: float = 5000.0, max_drift_ppm: float = 50.0) -> Clock:
        return cls(rng.uniform(-max_skew_ms, max_skew_ms), rng.uniform(-max_drift_ppm, max_drift_ppm))


@dataclass(frozen=True)
class Link:
    """One-way network delay of a player, the same law both ways: `base_ms` plus an
    exponential jitter of mean `jitter_ms`, capped at 10 x `jitter_ms` (queues are mostly
    short, sometimes long)."""

    base_ms: float = 0.0
    jitter_ms: float = 0.0

    def delay_ms(self, rng: random.Random) -> float:
        if self.jitter_ms <= 0:
            return self.base_ms
        return self.base_ms + min(rng.expovariate(1.0 / self.jitter_ms), 10 * self.jitter_ms)

    @classmethod
    def random(cls, rng: random.Random, base_ms: tuple[float, float] = (5.0, 20.0), jitter_ms: float = 2.0) -> Link:
        return cls(rng.uniform(*base_ms), jitter_ms)


@dataclass(frozen=True)
class SeekModel:
    """How long the player's media stack takes to play again after a seek: `mean_ms`,
    each seek within +-`spread` of it. The player learns it by measuring its own seeks."""

    mean_ms: float = 100.0
    spread: float = 0.2
    first_guess_ms: float = 100.0  # what the player assumes before it has measured a seek

    def sample(self, rng: random.Random) -> float:
        return self.mean_ms * rng.uniform(1 - self.spread, 1 + self.spread)

    @classmethod
    def random(cls, rng: random.Random, mean_ms: tuple[float, float] = (60.0, 180.0), spread: float = 0.2
               ) -> SeekModel:
        return cls(rng.uniform(*mean_ms), spread)


# --- the playhead ---------------------------------------------------------------------------------


class Playhead:
    """Media position in seconds as a function of the player's local time (ms): piecewise
    linear, frozen while paused, stalled or finishing a seek."""

    def __init__(self) -> None:
        self.pos = 0.0  # position at local time `at`
        self.at = 0.0
        self.speed = 0.0  # media seconds per local second; 0 while not advancing
        self.hold_until = -math.inf  # a seek in progress: frozen until then

    def position(self, local_ms: float) -> float:
        start = max(self.at, self.hold_until)
        if self.speed == 0.0 or local_ms <= start:
            return self.pos
        return self.pos + self.speed * (local_ms - start) / 1000.0

    def set_speed(self, local_ms: float, speed: float) -> None:
        if speed == self.speed:
            return
        self.pos = self.position(local_ms)
        self.at = local_ms
        self.speed = speed

    def seek(self, local_ms: float, position: float, latency_ms: float) -> None:
        self.pos = position
        self.at = local_ms
        self.hold_until = local_ms + latency_ms

    def seeking(self, local_ms: float) -> bool:
        return local_ms < self.hold_until


def target_position(state: dict[str, Any], server_now_ms: float) -> float:
    """Where the party is at server time `server_now_ms` (docs/watch-party.md, Clock sync)."""
    if not state["playing"]:
        return float(state["position"])
    return float(state["position"]) + float(state["rate"]) * max(0.0, server_now_ms - state["at_ms"]) / 1000.0


# --- correction policies ---------------------------------------------------------------------------


class Policy:
    """What a player does about the difference between its playhead and the party's target.
    `drift_ms` is playhead minus target (positive: ahead). Subclasses decide."""

    name = "policy"
    check_every_ms = 25.0

    def on_state(self, player: Player, local_ms: float, drift_ms: float) -> None:
        """A new state arrived (it may have moved the target)."""
        player.reset_correction(local_ms)
        if abs(drift_ms) > self.jump_ms(player):
            player.seek_to_target(local_ms, compensate=self.compensates)

    def on_tick(self, player: Player, local_ms: float, drift_ms: float) -> None:
        """The periodic check while playing."""

    compensates = True

    def jump_ms(self, player: Player) -> float:
        return 250.0


@dataclass
class PartyPolicy(Policy):
    """docs/watch-party.md: nothing within `dead_band_ms`; between that and `seek_above_ms`
    play at `rate * (1 - clamp(drift / window, +-max_nudge))`, the nudge fixed when the
    correction starts so the gap closes in `window` (longer when clamped), held until the
    drift is within `stop_ms` or changes sign; above `seek_above_ms` seek to the target plus
    the measured seek latency."""

    dead_band_ms: float = 5.0
    stop_ms: float = 1.0
    window_ms: float = 2000.0
    max_nudge: float = 0.05
    seek_above_ms: float = 250.0
    check_every_ms: float = 20.0
    name: str = "party"

    def jump_ms(self, player: Player) -> float:
        return self.seek_above_ms

    def on_state(self, player: Player, local_ms: float, drift_ms: float) -> None:
        super().on_state(player, local_ms, drift_ms)
        if not player.playhead.seeking(local_ms):
            self.on_tick(player, local_ms, player.drift_ms(local_ms))

    def on_tick(self, player: Player, local_ms: float, drift_ms: float) -> None:
        size = abs(drift_ms)
        if size > self.seek_above_ms:
            player.seek_to_target(local_ms, compensate=True)
            return
        if player.nudge:
            if size <= self.stop_ms or math.copysign(1, drift_ms) != math.copysign(1, player.nudge):
                player.set_nudge(local_ms, 0.0)
            return
        if size > self.dead_band_ms:
            player.set_nudge(local_ms, max(-self.max_nudge, min(self.max_nudge, drift_ms / self.window_ms)))


@dataclass
class JellyfinPolicy(Policy):
    """Jellyfin SyncPlay's defaults (jellyfin-web PlaybackCore): checks at most every 1.5 s
    (syncMethodThreshold / 2), and only once 1.5 s have passed since the last command or
    correction; a drift from 60 ms to under 3 s is sped away over 1 s (speed 1 + diff / 1 s,
    at least 0.2), a larger one is skipped by a seek to the estimated position (no
    allowance for the seek's latency). A new command seeks when the player is 400 ms or more
    off (minDelaySkipToSync)."""

    min_speed_ms: float = 60.0
    max_speed_ms: float = 3000.0
    speed_duration_ms: float = 1000.0
    skip_on_command_ms: float = 400.0
    check_every_ms: float = 1500.0
    name: str = "jellyfin"
    compensates = False

    def jump_ms(self, player: Player) -> float:
        return self.skip_on_command_ms

    def on_state(self, player: Player, local_ms: float, drift_ms: float) -> None:
        super().on_state(player, local_ms, drift_ms)
        player.next_check_local = local_ms + self.check_every_ms  # sync is enabled 1.5 s after a command

    def on_tick(self, player: Player, local_ms: float, drift_ms: float) -> None:
        diff = -drift_ms  # Jellyfin's sign: server minus local
        size = abs(diff)
        if self.min_speed_ms <= size < self.max_speed_ms:
            duration = self.speed_duration_ms
            if diff <= -duration * 0.2:
                duration = size / (1.0 - 0.2)
            speed = 1 + diff / duration
            player.set_nudge(local_ms, 1 - speed, until_local=local_ms + duration)
            player.next_check_local = local_ms + max(duration, self.check_every_ms)
        elif size >= self.max_speed_ms:
            player.seek_to_target(local_ms, compensate=False)


class NoCorrection(Policy):
    """Applies each state when it arrives (a seek, with the measured latency, when more than
    250 ms off) and never corrects afterwards: what clock sync alone gives."""

    name = "uncorrected"
    check_every_ms = 1e12


POLICIES: dict[str, Callable[[], Policy]] = {"party": PartyPolicy, "jellyfin": JellyfinPolicy,
                                             "uncorrected": NoCorrection}


# --- the player -------------------------------------------------------------------------------------


class PartyError(Exception):
    """A refused request: the server's error code, message and details."""

    def __init__(self, event: str, error: dict[str, Any]) -> None:
        super().__init__(f"{event}: {error.get('code')}: {error.get('message')}")
        self.code = str(error.get("code"))
        self.details = error.get("details") or {}


@dataclass
class Arrival:
    """One `party.state` as this player received it."""

    seq: int
    by: str
    at_ms: float  # the state's own server time
    raw_ms: float  # true time its bytes were read from the socket
    delivered_ms: float  # true time it reached the player, after the simulated network


class Player:
    """One viewer: a socket on `/party`, a clock, a network link, a playhead and a policy."""

    def __init__(self, name: str, token: str, *, user_id: str | None = None, clock: Clock | None = None,
                 link: Link | None = None, seek: SeekModel | None = None, policy: Policy | None = None,
                 rng: random.Random | None = None, sync_every_s: float | None = SYNC_EVERY_S,
                 http_session: Any = None) -> None:
        self.name = name
        self.token = token
        self.user_id = user_id
        self.clock = clock or Clock()
        self.link = link or Link()
        self.seek_model = seek or SeekModel()
        self.policy = policy or PartyPolicy()
        self.rng = rng or random.Random()
        self.sync_every_s = sync_every_s
        extra = {"http_session": http_session} if http_session is not None else {}
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False, **extra)
        self.sio.on("party.state", self._on_state_raw, namespace=NAMESPACE)
        self.sio.on("party.ended", self._on_ended_raw, namespace=NAMESPACE)
        self.sio.on("party.host", self._on_host_raw, namespace=NAMESPACE)
        self.sio.on("party.member", self._on_member_raw, namespace=NAMESPACE)
        self.sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)

        self._out: asyncio.Queue[tuple[float, str, Any, asyncio.Future[Any], dict[str, float]]] = asyncio.Queue()
        self._in: asyncio.Queue[tuple[float, Callable[[], None]]] = asyncio.Queue()
        self._out_last = 0.0
        self._in_last = 0.0
        self._tasks: list[asyncio.Task[None]] = []

        self.offset_ms: float | None = None  # server time minus local time, from the last sync
        self.sync_rtts: list[float] = []  # round trips kept by the last sync (local ms)
        self.sync_log: list[tuple[float, float, float]] = []  # every sync: (true ms, offset error ms, best rtt)
        self.party_id: str | None = None
        self.host_id: str | None = None
        self.state: dict[str, Any] | None = None  # the newest state this player follows
        self.playhead = Playhead()
        self.playing = False
        self.stalled = False
        self.nudge = 0.0  # the rate correction in force: speed = rate * (1 - nudge)
        self.nudge_until_local = math.inf  # a timed correction ends then
        self.next_check_local = -math.inf  # the policy's next periodic check
        self.seek_estimate_ms = self.seek_model.first_guess_ms
        self.seeks = 0
        self.ended: str | None = None
        self.disconnected: str | None = None  # why the server or the network closed the socket
        self.disconnected_ms: float | None = None
        self.host_changes = 0  # party.host events seen
        self.member_events: Counter[str] = Counter()  # party.member events seen, by kind

        self.arrivals: list[Arrival] = []
        self.seen: set[int] = set()  # every seq this player has had, from broadcasts, acks and replies
        self.first_seq: int | None = None  # the state it started from (create or join)
        self.max_broadcast_seq = 0
        self.out_of_order = 0
        self.broadcast_seen: set[int] = set()
        self.quiet_from_ms = math.inf  # true time from which its error counts (`count_from`)

    # --- connection and transport --------------------------------------------------------------

    async def connect(self, url: str, timeout: float = 30.0) -> None:
        await self.sio.connect(url, auth={"token": self.token}, namespaces=[NAMESPACE], transports=["websocket"],
                               wait_timeout=timeout)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sender()), loop.create_task(self._receiver())]

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.sio.disconnect()

    def _due(self, last: float) -> float:
        """FIFO under jitter: a message never leaves (or lands) before the one ahead of it."""
        return max(true_ms() + self.link.delay_ms(self.rng), last)

    async def _sleep_until(self, due_ms: float) -> None:
        wait = (due_ms - true_ms()) / 1000.0
        if wait > 0:
            await asyncio.sleep(wait)

    async def _sender(self) -> None:
        while True:
            due, name, data, future, stamps = await self._out.get()
            await self._sleep_until(due)
            if future.done():
                continue

            def answered(*args: Any, future: asyncio.Future[Any] = future) -> None:
                reply = args[0] if args else None
                self._land(lambda: future.done() or future.set_result(reply))

            stamps["sent_ms"] = true_ms()
            try:
                await self.sio.emit(name, data, namespace=NAMESPACE, callback=answered)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)

    def _land(self, deliver: Callable[[], None]) -> None:
        self._in_last = self._due(self._in_last)
        self._in.put_nowait((self._in_last, deliver))

    async def _receiver(self) -> None:
        while True:
            due, deliver = await self._in.get()
            await self._sleep_until(due)
            deliver()

    async def request(self, name: str, data: Any = None, *, stamps: dict[str, float] | None = None,
                      timeout: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        """Send after the outgoing delay, return the reply after the incoming one; refused
        requests raise PartyError. `stamps` gets `clicked_ms` and `sent_ms` (true time)."""
        stamps = stamps if stamps is not None else {}
        stamps["clicked_ms"] = true_ms()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._out_last = self._due(self._out_last)
        self._out.put_nowait((self._out_last, name, data if data is not None else {}, future, stamps))
        reply = await asyncio.wait_for(future, timeout)
        if not isinstance(reply, dict) or reply.get("ok") is not True:
            error = reply.get("error") if isinstance(reply, dict) else None
            raise PartyError(name, error or {"code": "bad_reply", "message": repr(reply)[:200]})
        return reply

    # --- clock sync ------------------------------------------------------------------------------------

    async def sync(self, samples: int = SYNC_SAMPLES, keep: int = SYNC_KEEP) -> float:
        """docs/watch-party.md: `samples` round trips, the `keep` lowest, their median offset."""
        measured: list[tuple[float, float]] = []
        for _ in range(samples):
            t0 = self.clock.local_ms()
            reply = await self.request("time.sync", {"t0": t0})
            t3 = self.clock.local_ms()
            measured.append((t3 - t0, float(reply["server_ms"]) - (t0 + t3) / 2))
        measured.sort()
        self.sync_rtts = [rtt for rtt, _ in measured[:keep]]
        first = self.offset_ms is None
        self.offset_ms = statistics.median(offset for _, offset in measured[:keep])
        now = true_ms()
        self.sync_log.append((now, self.offset_ms - (now - self.clock.local_ms(now)), self.sync_rtts[0]))
        if first:
            self._follow()
        return self.offset_ms

    async def keep_synced(self) -> None:
        """Re-sync every `sync_every_s` (a task of its own, until cancelled)."""
        if not self.sync_every_s:
            return
        await asyncio.sleep(self.rng.uniform(0, self.sync_every_s))
        while True:
            with contextlib.suppress(PartyError, TimeoutError, socketio.exceptions.SocketIOError):
                await self.sync()
            await asyncio.sleep(self.sync_every_s)

    def start_background(self) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self.keep_synced()))

    # --- party requests -------------------------------------------------------------------------------

    async def create(self, content_id: str, **extra: Any) -> dict[str, Any]:
        reply = await self.request("party.create", {"content_id": content_id, **extra})
        self._joined(reply)
        return reply

    async def join(self, invite_code: str | None = None, party_id: str | None = None) -> dict[str, Any]:
        body = {"invite_code": invite_code} if invite_code is not None else {"party_id": party_id}
        reply = await self.request("party.join", body)
        self._joined(reply)
        return reply

    def _joined(self, reply: dict[str, Any]) -> None:
        self.party_id = reply["party_id"]
        self.host_id = reply.get("host_id")
        self.first_seq = int(reply["state"]["seq"]) if self.first_seq is None else self.first_seq
        self.apply(reply["state"])

    async def control(self, action: str, **fields: Any) -> dict[str, Any]:
        """A control; the reply has `state` and the true times `clicked_ms` and `sent_ms`.
        A stale_state refusal applies the current state it carries, then raises."""
        stamps: dict[str, float] = {}
        try:
            reply = await self.request("party.control", {"action": action, **fields}, stamps=stamps)
        except PartyError as refused:
            if refused.code == "stale_state" and "state" in refused.details:
                self.apply(refused.details["state"])
            raise
        self.apply(reply["state"])
        return {**reply, **stamps}

    async def hand_over(self, user_id: str) -> str:
        reply = await self.request("party.host", {"user_id": user_id})
        self.host_id = reply["host_id"]
        return self.host_id

    async def stall(self, ms: float, *, settle_ms: float = 0.0) -> dict[str, Any]:
        """Buffer: the playhead stops for `ms` of local time; party.buffering is sent when it
        stops and party.ready when it can play again. The two replies (each with `state`,
        `clicked_ms` and `sent_ms`); the player's error counts again `settle_ms` after."""
        local = self.clock.local_ms()
        self.stalled = True
        self.quiet_from_ms = math.inf
        self._advance(local)
        replies: dict[str, Any] = {}
        for name in ("buffering", "ready"):
            if name == "ready":
                await asyncio.sleep(max(0.0, ms / 1000.0 - (self.clock.local_ms() - local) / 1000.0))
                self.stalled = False
                self._advance(self.clock.local_ms())
            stamps: dict[str, float] = {}
            reply = await self.request(f"party.{name}", {"position": self.position(self.clock.local_ms())},
                                       stamps=stamps)
            replies[name] = {**reply, **stamps}
            self.apply(reply["state"])
        self.quiet_from_ms = true_ms() + settle_ms
        return replies

    async def leave(self) -> None:
        await self.request("party.leave", {})
        self.party_id = None

    # --- following the party -------------------------------------------------------------------------

    def _on_state_raw(self, data: dict[str, Any]) -> None:
        raw = true_ms()

        def deliver() -> None:
            seq = int(data["seq"])
            if seq < self.max_broadcast_seq:
                self.out_of_order += 1
            self.max_broadcast_seq = max(self.max_broadcast_seq, seq)
            self.broadcast_seen.add(seq)
            self.arrivals.append(Arrival(seq, str(data.get("by")), float(data["at_ms"]), raw, true_ms()))
            self.apply(data)

        self._land(deliver)

    def _on_ended_raw(self, data: dict[str, Any]) -> None:
        self._land(lambda: setattr(self, "ended", str(data.get("reason"))))

    def _on_host_raw(self, data: dict[str, Any]) -> None:
        self.host_changes += 1
        self._land(lambda: setattr(self, "host_id", data.get("host_id")))

    def _on_member_raw(self, data: dict[str, Any]) -> None:
        self.member_events[str(data.get("event"))] += 1

    def _on_disconnect(self, reason: Any = None) -> None:
        """The socket went away: `disconnected` holds why (python-socketio's reason)."""
        if self._tasks:  # not a close of ours
            self.disconnected = str(reason or "disconnected")
            self.disconnected_ms = true_ms()

    def apply(self, state: dict[str, Any]) -> None:
        """Follow `state` if it is newer than the one followed."""
        seq = int(state["seq"])
        self.seen.add(seq)
        if self.state is not None and seq <= int(self.state["seq"]):
            return
        self.state = dict(state)
        self._follow()

    def _follow(self) -> None:
        """Take up the followed state: pause on the exact frame, or let the policy decide."""
        if self.state is None or self.offset_ms is None or self.stalled:
            return
        local = self.clock.local_ms()
        self._advance(local)
        if not self.state["playing"]:  # paused: show the exact frame (Jellyfin too seeks on pause)
            self.reset_correction(local)
            self.playhead.seek(local, self.target(local), 0.0)
            return
        self.policy.on_state(self, local, self.drift_ms(local))

    def missed(self) -> list[int]:
        """The states after the one this player started from that never reached it as a
        `party.state` (every member, the sender included, gets every change broadcast)."""
        if self.first_seq is None:
            return []
        newest = max(self.seen | {self.first_seq})
        return [s for s in range(self.first_seq + 1, newest + 1) if s not in self.broadcast_seen]

    def count_from(self, at_ms: float) -> None:
        """Count this player's error from true time `at_ms` on (after it joined and settled)."""
        self.quiet_from_ms = at_ms

    # --- the playhead and corrections ---------------------------------------------------------------

    def position(self, local_ms: float) -> float:
        return self.playhead.position(local_ms)

    def server_now(self, local_ms: float) -> float:
        assert self.offset_ms is not None
        return local_ms + self.offset_ms

    def target(self, local_ms: float) -> float:
        assert self.state is not None
        return target_position(self.state, self.server_now(local_ms))

    def drift_ms(self, local_ms: float) -> float:
        return (self.position(local_ms) - self.target(local_ms)) * 1000.0

    def _speed(self) -> float:
        if not self.playing or self.stalled or self.state is None:
            return 0.0
        return float(self.state["rate"]) * (1.0 - self.nudge)

    def _advance(self, local_ms: float) -> None:
        """Bring play/pause and speed in line with the followed state."""
        if self.state is not None and self.offset_ms is not None:
            self.playing = bool(self.state["playing"])
        self.playhead.set_speed(local_ms, self._speed())

    def set_nudge(self, local_ms: float, nudge: float, until_local: float = math.inf) -> None:
        self.nudge = nudge
        self.nudge_until_local = until_local
        self.playhead.set_speed(local_ms, self._speed())

    def reset_correction(self, local_ms: float) -> None:
        self.set_nudge(local_ms, 0.0)

    def seek_to_target(self, local_ms: float, *, compensate: bool) -> None:
        """Seek to the target; with `compensate`, to where it will be when the seek is done."""
        assert self.state is not None
        latency = self.seek_model.sample(self.rng)
        ahead = self.seek_estimate_ms if compensate and self.state["playing"] else 0.0
        destination = target_position(self.state, self.server_now(local_ms) + ahead * float(self.state["rate"]))
        self.nudge, self.nudge_until_local = 0.0, math.inf
        self.playhead.seek(local_ms, destination, latency)
        self.playhead.set_speed(local_ms, self._speed())
        self.seeks += 1
        self.seek_estimate_ms = latency if self.seeks == 1 else 0.5 * self.seek_estimate_ms + 0.5 * latency

    def tick(self, local_ms: float) -> None:
        """Called often (every 10-25 ms): ends a timed correction on time, and runs the
        policy's periodic check when it is due, while the player follows a playing party."""
        if self.state is None or self.offset_ms is None or self.stalled:
            return
        self._advance(local_ms)
        if local_ms >= self.nudge_until_local:
            self.set_nudge(local_ms, 0.0)
        if not self.state["playing"]:
            if abs(self.drift_ms(local_ms)) > 0.5:  # paused (it resumed from a stall, say): the exact frame
                self.playhead.seek(local_ms, self.target(local_ms), 0.0)
            return
        if self.playhead.seeking(local_ms) or local_ms < self.next_check_local - 2.0:  # timers fire a bit early
            return
        self.next_check_local = local_ms + self.policy.check_every_ms
        self.policy.on_tick(self, local_ms, self.drift_ms(local_ms))


# --- many players in one process ------------------------------------------------------------------


@dataclass
class Sample:
    at_ms: float  # true time
    player: str
    party_id: str
    seq: int  # the state taken as the truth
    error_ms: float


class Fleet:
    """The players of one process: one timer drives every player's policy checks, one
    sampler records errors against the truth (the newest state any of them has)."""

    def __init__(self, *, sample_every_ms: float = 100.0, step_ms: float = 20.0) -> None:
        self.players: dict[str, Player] = {}
        self.samples: list[Sample] = []
        self.sample_every_ms = sample_every_ms
        self.step_ms = step_ms
        self.sampling = False
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, player: Player) -> Player:
        self.players[player.name] = player
        return player

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._drive()), loop.create_task(self._sample())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(p.close() for p in self.players.values()), return_exceptions=True)

    async def _drive(self) -> None:
        while True:
            now = true_ms()
            for player in list(self.players.values()):
                player.tick(player.clock.local_ms(now))
            await asyncio.sleep(self.step_ms / 1000.0)

    def truth(self) -> dict[str, dict[str, Any]]:
        """The newest state of each party among these players."""
        newest: dict[str, dict[str, Any]] = {}
        for p in self.players.values():
            if p.party_id and p.state is not None:
                best = newest.get(p.party_id)
                if best is None or p.state["seq"] > best["seq"]:
                    newest[p.party_id] = p.state
        return newest

    def errors(self, at_ms: float | None = None) -> dict[str, tuple[str, int, float]]:
        """Each following player's error at true time `at_ms`: (party, truth seq, ms)."""
        now = true_ms() if at_ms is None else at_ms
        truth = self.truth()
        out = {}
        for name, p in self.players.items():
            state = truth.get(p.party_id or "")
            if state is None or p.offset_ms is None or p.stalled or p.ended or now < p.quiet_from_ms:
                continue
            error = (p.position(p.clock.local_ms(now)) - target_position(state, now)) * 1000.0
            out[name] = (p.party_id or "", int(state["seq"]), error)
        return out

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(self.sample_every_ms / 1000.0)
            if not self.sampling:
                continue
            now = true_ms()
            for name, (party_id, seq, error) in self.errors(now).items():
                self.samples.append(Sample(now, name, party_id, seq, error))

    async def wait_for(self, condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
        """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(step)
        return True

    def have_seq(self, party_id: str, seq: int, names: list[str] | None = None) -> bool:
        """Whether every player of the party (or of `names`) follows state `seq` or newer."""
        chosen = [self.players[n] for n in names] if names else [
            p for p in self.players.values() if p.party_id == party_id]
        return all(p.state is not None and p.state["seq"] >= seq for p in chosen)

    def settled(self, within_ms: float, names: list[str] | None = None) -> bool:
        """Whether every player of a party (or of `names`) is within `within_ms` of the truth
        with its corrections done: not seeking, no rate correction in force."""
        now = true_ms()
        errors = self.errors(now)
        chosen = names or [n for n, p in self.players.items() if p.party_id]
        for name in chosen:
            p = self.players[name]
            if name not in errors or abs(errors[name][2]) > within_ms or p.nudge:
                return False
            if p.playhead.seeking(p.clock.local_ms(now)):
                return False
        return True
