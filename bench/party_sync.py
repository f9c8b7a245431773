"""Watch-party sync: how far simulated players are from the party's true position, and how
fast a control reaches every member, on two app processes sharing Redis; then 500 parties
of 10 at once.

    .venv/bin/python bench/party_sync.py                        # both scenarios
    .venv/bin/python bench/party_sync.py --scenario sync        # 50 players per policy (about 6 min)
    .venv/bin/python bench/party_sync.py --scenario scale       # 500 parties of 10 (15 min or more: seating)
    .venv/bin/python bench/party_sync.py --players-process      (a load-generator process, started by the benchmark)

Set-up: an embedded nx-27017 started by the bench (storage.embedded_mongo.EmbeddedMongo)
and Redis (REDIS_URL, default redis://127.0.0.1:6379; a temporary redis-server if none
answers), two `run.py` processes A and B on them (one database name, one secret key;
shipped defaults except the IP, auth and user rate limits, raised because everything comes
from 127.0.0.1). Before they start, the bench seeds the database in process through the
app's own services (server.app.runtime.Runtime without HTTP, as `run.py createsuperuser`
does): a published movie with a ready asset record (the synthetic two-hour ladder of
media_playlists.py; no media file is read here), and viewers with a complimentary Premium
plan (4 streams: a seat is a stream slot) and an access token each, made without a
password (argon2 would make 1,300 sign-ups the slow part).

Players are tests/party/players.py (python-socketio AsyncClient on `/party`, websocket),
in load-generator processes of their own (`--players-process`, driven over JSON lines on
stdin/stdout by sio_load.Generator), half of each party's members on A and half on B.
Every player has its own clock (skew uniform in +-5 s, drift +-50 ppm), a one-way network
delay each way (base uniform in 5-20 ms plus an exponential jitter of mean 2 ms, in
order), a seek latency (60-180 ms, +-20 % per seek), syncs its clock as the doc says and
re-syncs every 30 s.

**sync** (`--players` 50 per policy, parties of `--party-size` 10): the same 50 players
(same clocks, links, seek latencies) three times over, in parties of their own that follow
one script side by side: `party` (docs/watch-party.md's correction policy), `jellyfin`
(Jellyfin SyncPlay's defaults: 60 ms dead band, 1 s speed-ups, checks every 1.5 s, no
allowance for seek latency) and `uncorrected` (applies each state once). Script: play,
seek, pause, play, rate 1.25, host hand-over and a seek by the new host, a member buffering
2 s, a late join, rate 1.0, a member buffering past the party's wait limit (the party goes
on without it, it catches up). Each step is sent to every party (100 ms apart); once every
member has the resulting state, `--settle` seconds pass, then every player's error is
sampled every 100 ms for `--steady` seconds (true time is the processes' time.time(), the
servers' clock too). Prints p50/p99/max of |error| per policy, control -> all members
latency, out-of-order and missed states, and the ratios party/jellyfin and
party/uncorrected.

**scale** (`--parties` 500 of `--members` 10, 5,000 sockets in `--scale-procs` 4 processes
of their own, users in 4 parties each): after everyone joined, `--idle` s with no control
(the servers' CPU for holding the parties), then every host sends a control every
`--interval` s (default 10: 50 controls/s in all; random phase; play, rate, seek, pause,
...) for `--duration` s (60). Prints the
latency from a control to its arrival at all 10 members, missed and out-of-order states,
and the server CPU per control (both processes, gross and net of the idle rate).

Latency: `raw` = the member's socket read the state - the host's client emitted the
control (server and loopback only); `e2e` adds the simulated network both ways (host
click -> member's player). A control's all-members time is the largest over its members.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import (
    NAN,
    ROOT,
    Column,
    CpuMeter,
    free_port,
    header_line,
    load_average,
    load_average_line,
    percentile,
    raise_nofile,
    ratio_line,
    result_line,
    scratch_dir,
    start_app,
    stop,
    wait_until_answers,
)
from sio_load import LINE_LIMIT, Generator
from socket_cross_process import start_redis

sys.path.insert(0, str(ROOT))

from tests.party.players import (
    POLICIES,
    Clock,
    Fleet,
    Link,
    PartyError,
    Player,
    SeekModel,
    true_ms,
)

SCRIPT = [  # (step, arguments): the scripted session of the sync scenario
    ("play", {}), ("seek", {"position": 600.0}), ("pause", {}), ("play", {}), ("rate", {"rate": 1.25}),
    ("hand_over", {}), ("seek", {"position": 1200.0}), ("buffer", {"ms": 2000}), ("late_join", {}),
    ("rate", {"rate": 1.0}), ("laggard", {"extra_ms": 2000}),
]
SCALE_ACTIONS = [("play", None), ("rate", 1.25), ("seek", None), ("pause", None), ("seek", None), ("rate", 1.0)]


# --- the players process -----------------------------------------------------------------------


class PlayersProcess:
    """One load-generator process: a Fleet of players and the commands that drive them."""

    def __init__(self) -> None:
        self.fleet = Fleet(sample_every_ms=100.0)
        self.http: Any = None
        self.stalls: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self.started = False

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        kind = cmd["cmd"]
        fleet, players = self.fleet, self.fleet.players
        if kind == "add":
            return await self.add(cmd)
        if kind == "start":
            if not self.started:
                fleet.start()
                self.started = True
            return {"ok": True}
        if kind == "create":
            reply = await players[cmd["player"]].create(cmd["content_id"])
            return {"party_id": reply["party_id"], "invite_code": reply["invite_code"], "seq": reply["state"]["seq"]}
        if kind == "join":
            return await self.join(cmd)
        if kind == "seat":
            return await self.seat(cmd)
        if kind == "count_from":
            for name in cmd.get("players") or list(players):
                players[name].count_from(cmd["at_ms"])
            return {"ok": True}
        if kind == "control":
            extra = {k: cmd[k] for k in ("position", "rate") if cmd.get(k) is not None}
            reply = await players[cmd["player"]].control(cmd["action"], **extra)
            return {"seq": reply["state"]["seq"], "clicked_ms": reply["clicked_ms"], "sent_ms": reply["sent_ms"],
                    "answered_ms": true_ms(), "state": reply["state"]}
        if kind == "hand_over":
            return {"host_id": await players[cmd["player"]].hand_over(cmd["to"])}
        if kind == "stall":
            player = players[cmd["player"]]
            self.stalls[cmd["player"]] = asyncio.ensure_future(player.stall(cmd["ms"], settle_ms=cmd["settle_ms"]))
            return {"started": True}
        if kind == "stall_result":
            replies = await asyncio.wait_for(self.stalls.pop(cmd["player"]), cmd.get("timeout", 120))
            return {name: {"seq": r["state"]["seq"], "clicked_ms": r["clicked_ms"], "sent_ms": r["sent_ms"],
                           "state": r["state"]} for name, r in replies.items()}
        if kind == "wait_seq":
            done = await fleet.wait_for(lambda: fleet.have_seq(cmd["party"], cmd["seq"]), cmd.get("timeout", 60))
            return {"done": done}
        if kind == "sampling":
            fleet.sampling = bool(cmd["on"])
            return {"ok": True}
        if kind == "controls":
            return await self.controls(cmd)
        if kind == "report":
            return self.report()
        if kind == "leave":
            results = await asyncio.gather(*(players[n].leave() for n in cmd["players"] if players[n].party_id),
                                           return_exceptions=True)
            return {"failed": sum(isinstance(r, BaseException) for r in results)}
        return {"error": f"unknown command {kind!r}"}

    async def add(self, cmd: dict[str, Any]) -> dict[str, Any]:
        import aiohttp

        if self.http is None:  # one session (no connection cap) for every player of the process
            self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        sem = asyncio.Semaphore(int(cmd.get("concurrency", 50)))
        errors: Counter[str] = Counter()
        started = time.monotonic()

        async def one(spec: dict[str, Any]) -> bool:
            rng = random.Random(spec["seed"])
            player = self.fleet.add(Player(
                spec["name"], spec["token"], user_id=spec["user_id"],
                clock=Clock(spec["skew_ms"], spec["drift_ppm"]), link=Link(spec["base_ms"], spec["jitter_ms"]),
                seek=SeekModel(spec["seek_ms"], 0.2), policy=POLICIES[spec["policy"]](), rng=rng,
                sync_every_s=30.0 if cmd.get("sync") else None, http_session=self.http))
            async with sem:
                try:
                    await player.connect(spec["url"], timeout=60)
                    if cmd.get("sync"):
                        await player.sync()
                        player.start_background()
                    return True
                except Exception as exc:
                    errors[f"{type(exc).__name__}: {exc}"[:100]] += 1
                    return False

        results = await asyncio.gather(*(one(spec) for spec in cmd["players"]))
        return {"ok": sum(results), "failed": len(results) - sum(results), "errors": dict(errors),
                "seconds": time.monotonic() - started}

    async def join(self, cmd: dict[str, Any]) -> dict[str, Any]:
        sem = asyncio.Semaphore(int(cmd.get("concurrency", 20)))
        errors: Counter[str] = Counter()

        async def one(name: str, code: str) -> bool:
            async with sem:
                try:
                    await self.fleet.players[name].join(code)
                    return True
                except (PartyError, TimeoutError) as exc:
                    errors[str(exc)[:100]] += 1
                    return False

        results = await asyncio.gather(*(one(name, code) for name, code in cmd["joins"]))
        return {"ok": sum(results), "failed": len(results) - sum(results), "errors": dict(errors)}

    async def seat(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Parties of these players: for each [host, *guests], the host creates, the guests join."""
        sem = asyncio.Semaphore(int(cmd.get("concurrency", 20)))
        errors: Counter[str] = Counter()

        async def one(names: list[str]) -> list[str] | None:
            host = self.fleet.players[names[0]]
            try:
                async with sem:
                    created = await host.create(cmd["content_id"])
                for name in names[1:]:
                    async with sem:
                        await self.fleet.players[name].join(created["invite_code"])
                return [created["party_id"], created["invite_code"]]
            except (PartyError, TimeoutError) as exc:
                errors[str(exc)[:100]] += 1
                return None

        parties = await asyncio.gather(*(one(names) for names in cmd["parties"]))
        return {"parties": parties, "errors": dict(errors)}

    async def controls(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Every host of `hosts` sends a control every `interval_s` (random phase) for
        `duration_s`; the record of each: party, seq, click and send times."""
        interval, until = float(cmd["interval_s"]), time.monotonic() + float(cmd["duration_s"])
        records: list[list[Any]] = []
        errors: Counter[str] = Counter()
        unchanged = [0]

        async def host_loop(name: str, rng: random.Random) -> None:
            player = self.fleet.players[name]
            await asyncio.sleep(rng.uniform(0, interval))
            k = SCALE_ACTIONS.index(("play", None))  # from then on, every control changes the state
            while time.monotonic() < until:
                started = time.monotonic()
                action, rate = SCALE_ACTIONS[k % len(SCALE_ACTIONS)]
                k += 1
                extra: dict[str, Any] = {"rate": rate} if rate else {}
                if action == "seek":
                    extra["position"] = round(rng.uniform(0, 7000), 3)
                try:
                    reply = await player.control(action, **extra)
                    if reply["state"]["at_ms"] > reply["sent_ms"] - 1:
                        records.append([player.party_id, reply["state"]["seq"], reply["clicked_ms"],
                                        reply["sent_ms"], true_ms()])
                    else:  # a pause while paused changes nothing, and nothing is sent to the members
                        unchanged[0] += 1
                except (PartyError, TimeoutError) as exc:
                    errors[str(exc)[:100]] += 1
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

        await asyncio.gather(*(host_loop(name, random.Random(i)) for i, name in enumerate(cmd["hosts"])))
        return {"records": records, "errors": dict(errors), "unchanged": unchanged[0]}

    def report(self) -> dict[str, Any]:
        players = self.fleet.players
        now = true_ms()
        return {
            "samples": [[s.at_ms, s.player, s.party_id, s.seq, s.error_ms] for s in self.fleet.samples],
            "players": {name: {
                "party_id": p.party_id, "policy": p.policy.name, "first_seq": p.first_seq,
                "arrivals": [[a.seq, a.by, a.at_ms, a.raw_ms, a.delivered_ms] for a in p.arrivals],
                "out_of_order": p.out_of_order, "missed": p.missed(), "seeks": p.seeks,
                "disconnected": p.disconnected, "ended": p.ended, "host_changes": p.host_changes,
                "member_events": dict(p.member_events),
                "sync_error_ms": (p.offset_ms - (now - p.clock.local_ms(now))) if p.offset_ms is not None else None,
                "sync_rtts": p.sync_rtts, "sync_log": p.sync_log,
            } for name, p in players.items()},
        }

    async def close(self) -> None:
        await self.fleet.stop()
        if self.http is not None:
            await self.http.close()


async def players_main() -> None:
    raise_nofile()
    logging.getLogger("engineio.client").setLevel(logging.CRITICAL)  # "packet queue is empty" at every close
    logging.getLogger("socketio.client").setLevel(logging.CRITICAL)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    process = PlayersProcess()
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            if cmd["cmd"] == "exit":
                break
            try:
                answer = await process.handle(cmd)
            except Exception as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            sys.stdout.write(json.dumps(answer, separators=(",", ":")) + "\n")
            sys.stdout.flush()
    finally:
        await process.close()


# --- driver: set-up -------------------------------------------------------------------------------


class ScenarioFailed(Exception):
    """A scenario that cannot go on; the run reports it and goes on with the next one."""


async def seed(env: dict[str, str], users: int, *, title: bool) -> tuple[str | None, list[dict[str, str]]]:
    """With `title`, a published movie with a ready asset record; and `users` Premium viewers
    with access tokens (valid 15 min: seeded just before use). Through the app's services in
    this process, with no HTTP server, as `run.py createsuperuser` runs."""
    from media_playlists import synthetic_renditions

    from config import load_settings
    from server.app.runtime import Runtime
    from server.core.ids import new_id
    from server.core.permissions import Principal, Role
    from server.identity.sessions import ClientInfo
    from server.media.transcode import rendition_doc
    from storage.media.assets import MediaRepository

    runtime = Runtime(load_settings(env, env_file=None))
    await runtime.start(serve_http=False)
    try:
        services, platform = runtime.services, runtime.platform
        assert services is not None and platform is not None
        system = Principal("system", "bench", frozenset({Role.SUPER_ADMIN.value}))
        title_id = None
        if title:
            made_title = await services.content_admin.create_title(system, {
                "type": "movie", "title": f"Party night {secrets.token_hex(3)}", "runtime_s": 7200,
                "maturity_rating": "all"})
            title_id = str(made_title["id"])
            await services.content_admin.publish(system, title_id, without_media=True)
            now = int(time.time() * 1000)
            await MediaRepository(platform.db).put_asset({
                "_id": new_id(), "content_id": title_id, "status": "ready", "version": 1,
                "renditions": [rendition_doc(r) for r in synthetic_renditions(1200)], "duration": 7200.0,
                "source": {"width": 1920, "height": 1080, "codec": "h264"}, "upload_id": None,
                "created_ms": now, "ready_ms": now})
        run = secrets.token_hex(4)

        async def viewer(i: int) -> dict[str, str]:
            user = await services.accounts.create_user(f"party-{run}-{i}@example.com", f"Viewer {i}", password=None,
                                                       email_verified=True)
            user_id = str(user["_id"])
            await services.entitlements.grant_complimentary(system, user_id, "premium", 1, "bench")
            pair = await services.sessions.start(user_id, ClientInfo(ip="127.0.0.1"), method="password")
            return {"user_id": user_id, "token": pair.access_token}

        made: list[dict[str, str]] = []
        for start in range(0, users, 25):
            made += await asyncio.gather(*(viewer(i) for i in range(start, min(users, start + 25))))
        return title_id, made
    finally:
        await runtime.stop()


def player_spec(rng: random.Random, name: str, policy: str, viewer: dict[str, str], url: str) -> dict[str, Any]:
    link = Link.random(rng, (5.0, 20.0), 2.0)
    return {"name": name, "policy": policy, "token": viewer["token"], "user_id": viewer["user_id"], "url": url,
            "skew_ms": rng.uniform(-5000, 5000), "drift_ppm": rng.choice((-50.0, 50.0)),
            "base_ms": link.base_ms, "jitter_ms": link.jitter_ms, "seek_ms": SeekModel.random(rng).mean_ms,
            "seed": rng.randrange(1 << 30)}


async def ask_all(gens: list[Generator], wait_s: float, **cmd: Any) -> list[dict[str, Any]]:
    answers = await asyncio.gather(*(g.ask(wait_s, **cmd) for g in gens))
    for a in answers:
        if "error" in a:
            raise ScenarioFailed(f"players process: {a['error']}")
    return answers


def checked(answer: dict[str, Any], what: str) -> dict[str, Any]:
    if "error" in answer:
        raise ScenarioFailed(f"{what}: {answer['error']}")
    return answer


def party_newest(players: dict[str, dict[str, Any]]) -> dict[str, int]:
    """The newest state of each party that any member received."""
    newest: dict[str, int] = {}
    for p in players.values():
        for a in p["arrivals"]:
            newest[p["party_id"]] = max(newest.get(p["party_id"], 0), a[0])
    return newest


def missed_states(players: dict[str, dict[str, Any]], newest: dict[str, int]) -> dict[str, int]:
    """Per player, the states of its party after the one it started from, up to the newest any
    member received, that never reached it as a party.state (the last ones included)."""
    out = {}
    for name, p in players.items():
        if p["first_seq"] is None or p["party_id"] not in newest:
            continue
        got = {a[0] for a in p["arrivals"]}
        out[name] = sum(1 for seq in range(p["first_seq"] + 1, newest[p["party_id"]] + 1) if seq not in got)
    return out


def member_events(players: dict[str, dict[str, Any]]) -> dict[str, int]:
    """party.member events the players saw, by kind (each seen by every member of the party)."""
    total: Counter[str] = Counter()
    for p in players.values():
        total.update(p["member_events"])
    return dict(total)


def stats_ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": values[-1] if values else NAN,
            "n": len(values)}


def latencies(controls: list[dict[str, Any]], arrivals: dict[tuple[str, int], list[tuple[float, float]]],
              members_at: dict[tuple[str, int], int]) -> dict[str, Any]:
    """Per delivery and per control (the last member), raw and end to end; controls that did
    not reach every member are counted, not timed."""
    raw, e2e, all_raw, all_e2e = [], [], [], []
    short = 0
    for c in controls:
        got = arrivals.get((c["party"], c["seq"]), [])
        raw += [r - c["sent_ms"] for r, _ in got]
        e2e += [d - c["clicked_ms"] for _, d in got]
        if len(got) < members_at.get((c["party"], c["seq"]), 0) or not got:
            short += 1
            continue
        all_raw.append(max(r for r, _ in got) - c["sent_ms"])
        all_e2e.append(max(d for _, d in got) - c["clicked_ms"])
    return {"delivery_raw": stats_ms(raw), "delivery_e2e": stats_ms(e2e), "all_raw": stats_ms(all_raw),
            "all_e2e": stats_ms(all_e2e), "controls": len(controls), "not_all_reached": short}


# --- driver: the sync scenario ------------------------------------------------------------------------


async def run_sync(args: argparse.Namespace, title_id: str, viewers: list[dict[str, str]], urls: dict[str, str],
                   server_pids: list[int]) -> dict[str, Any]:
    policies = ["party", *args.baselines]
    size = args.party_size
    n_parties = -(-args.players // size)
    gens = [await Generator.start((__file__, "--players-process")) for _ in range(args.procs)]
    where: dict[str, Generator] = {}
    parties: list[dict[str, Any]] = []
    try:
        specs: dict[int, list[dict[str, Any]]] = {g: [] for g in range(args.procs)}
        for policy in policies:
            for k in range(n_parties):
                names = [f"{policy}-{i}" for i in range(k * size, min(args.players, (k + 1) * size))]
                parties.append({"policy": policy, "names": names, "host": names[0], "late": names[-1]})
            for i in range(args.players):  # player i is the same (clock, link, seeks) under every policy
                spec = player_spec(random.Random(f"{args.seed}:{i}"), f"{policy}-{i}", policy, viewers[i],
                                   urls["a" if i % 2 == 0 else "b"])
                g = (i // 2) % args.procs
                specs[g].append(spec)
                where[spec["name"]] = gens[g]
        added = await asyncio.gather(*(gens[g].ask(900, cmd="add", players=specs[g], sync=True, concurrency=20)
                                       for g in specs))
        if sum(a["failed"] for a in added):
            raise ScenarioFailed(f"players failed to connect: {added}")
        for party in parties:
            created = checked(await where[party["host"]].ask(60, cmd="create", player=party["host"],
                                                              content_id=title_id), "create")
            party.update(party_id=created["party_id"], code=created["invite_code"], seq=created["seq"],
                         members=[party["host"]], hosted_by=party["host"])
            for name in party["names"][1:-1]:
                joined = checked(await where[name].ask(60, cmd="join", joins=[[name, party["code"]]]), "join")
                if joined["failed"]:
                    raise ScenarioFailed(f"{name} could not join: {joined['errors']}")
                party["members"].append(name)
        await ask_all(gens, 30, cmd="count_from", at_ms=true_ms())
        await ask_all(gens, 30, cmd="start")
        meter = CpuMeter(*server_pids)

        controls: list[dict[str, Any]] = []
        members_at: dict[tuple[str, int], int] = {}
        notes: dict[str, list[dict[str, Any]]] = {"laggard": [], "buffer": []}
        windows: list[tuple[str, float, float]] = []  # (step, from, to): when errors were sampled

        async def wait_everyone(seqs: dict[str, int]) -> None:
            for party in parties:
                done = await asyncio.gather(*(g.ask(120, cmd="wait_seq", party=party["party_id"],
                                                    seq=seqs[party["party_id"]], timeout=60) for g in gens))
                if not all(d.get("done") for d in done):
                    raise ScenarioFailed(f"party {party['policy']} {party['party_id']}: state "
                                         f"{seqs[party['party_id']]} did not reach every member within 60 s")

        def note_control(party: dict[str, Any], reply: dict[str, Any], kind: str) -> None:
            controls.append({"party": party["party_id"], "policy": party["policy"], "seq": reply["seq"],
                             "clicked_ms": reply["clicked_ms"], "sent_ms": reply["sent_ms"], "kind": kind})
            members_at[(party["party_id"], reply["seq"])] = len(party["members"])

        for step, params in SCRIPT:
            seqs: dict[str, int] = {}
            if step == "hand_over":
                for party in parties:
                    to = party["names"][1]
                    await where[party["hosted_by"]].ask(60, cmd="hand_over", player=party["hosted_by"],
                                                        to=viewers[int(to.rsplit("-", 1)[1])]["user_id"])
                    party["hosted_by"] = to
                continue
            if step in ("buffer", "laggard"):
                ms = params.get("ms", args.buffer_wait_ms + params.get("extra_ms", 0))
                for party in parties:  # the third member buffers, then the fourth (guests, not the late one)
                    seated = party["names"][:-1]
                    party["stalls"] = seated[min(2 if step == "buffer" else 3, len(seated) - 1)]
                    await where[party["stalls"]].ask(60, cmd="stall", player=party["stalls"], ms=ms,
                                                     settle_ms=args.settle * 1000)
                    await asyncio.sleep(args.stagger)
                for party in parties:
                    name = party["stalls"]
                    got = checked(await where[name].ask(ms / 1000 + 120, cmd="stall_result", player=name), "stall")
                    note_control(party, got["buffering"], "buffering")
                    ready = got["ready"]
                    if ready["state"]["at_ms"] > ready["sent_ms"] - 1:  # made by the ready, not by the wait's end
                        note_control(party, ready, "ready")
                    paused = got["buffering"]["state"]
                    notes[step].append({"party": party["party_id"], "seq": paused["seq"],
                                        "paused_at_ms": paused["at_ms"]})
                    seqs[party["party_id"]] = max(ready["seq"], paused["seq"] + 1)
            elif step == "late_join":
                for party in parties:
                    name = party["late"]
                    joined = checked(await where[name].ask(60, cmd="join", joins=[[name, party["code"]]]), "join")
                    if joined["failed"]:
                        raise ScenarioFailed(f"{name} could not join late: {joined['errors']}")
                    party["members"].append(name)
                    await where[name].ask(30, cmd="count_from", players=[name], at_ms=true_ms() + args.settle * 1000)
                    seqs[party["party_id"]] = party["seq"]
                    await asyncio.sleep(args.stagger)
            else:
                for party in parties:
                    host = party["hosted_by"]
                    reply = checked(await where[host].ask(60, cmd="control", player=host, action=step, **params),
                                    f"{step} on {party['party_id']}")
                    note_control(party, reply, step)
                    seqs[party["party_id"]] = party["seq"] = reply["seq"]
                    await asyncio.sleep(args.stagger)
            for party in parties:
                party["seq"] = max(party["seq"], seqs.get(party["party_id"], 0))
            await wait_everyone({p["party_id"]: p["seq"] for p in parties})
            await asyncio.sleep(args.settle)
            await ask_all(gens, 30, cmd="sampling", on=True)
            window = [step, true_ms()]
            await asyncio.sleep(args.steady)
            await ask_all(gens, 30, cmd="sampling", on=False)
            windows.append((*window, true_ms()))
        elapsed = meter.elapsed()
        server_cpu = [s / elapsed for s in meter.used()]
        reports = await ask_all(gens, 300, cmd="report")
        await asyncio.gather(*(g.ask(300, cmd="leave", players=[n for n in where if where[n] is g]) for g in gens))
    finally:
        for g in gens:
            await g.stop()
    return summarize_sync(args, policies, parties, controls, members_at, reports, notes, windows, server_cpu)


def summarize_sync(args: argparse.Namespace, policies: list[str], parties: list[dict[str, Any]],
                   controls: list[dict[str, Any]], members_at: dict[tuple[str, int], int],
                   reports: list[dict[str, Any]], notes: dict[str, Any], windows: list[tuple[str, float, float]],
                   server_cpu: list[float]) -> dict[str, Any]:
    players: dict[str, dict[str, Any]] = {}
    samples: list[list[Any]] = []
    for r in reports:
        players.update(r["players"])
        samples += r["samples"]
    policy_of = {p["party_id"]: p["policy"] for p in parties}
    party_max = party_newest(players)
    arrivals: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for p in players.values():
        for seq, _by, _at, raw, delivered in p["arrivals"]:
            arrivals.setdefault((p["party_id"], seq), []).append((raw, delivered))
    out: dict[str, Any] = {"policies": {}, "server_cpu": server_cpu}
    for policy in policies:
        mine = {n: p for n, p in players.items() if p["policy"] == policy}
        errors = [abs(s[4]) for s in samples if policy_of.get(s[2]) == policy]
        sync_errors = [abs(p["sync_error_ms"]) for p in mine.values() if p["sync_error_ms"] is not None]
        out["policies"][policy] = {
            "players": len(mine), "samples": len(errors), **{f"{k}_ms": v for k, v in stats_ms(errors).items()
                                                             if k != "n"},
            "out_of_order": sum(p["out_of_order"] for p in mine.values()),
            "missed": sum(missed_states(mine, party_max).values()),
            "seeks": sum(p["seeks"] for p in mine.values()),
            "disconnected": sum(bool(p["disconnected"]) for p in mine.values()),
            "sync_error_p99_ms": percentile(sorted(sync_errors), 99),
            "latency": latencies([c for c in controls if c["policy"] == policy], arrivals, members_at),
            "worst_by_step": [[step, sorted(([round(abs(x[4]), 1), x[1], round(x[0] - start)] for x in samples
                                             if policy_of.get(x[2]) == policy and start <= x[0] <= end),
                                            reverse=True)[:3]] for step, start, end in windows],
            "sync_error_max_ms": max((abs(e) for p in mine.values() for _, e, _ in p["sync_log"]), default=NAN),
            "p99_ms_by_step": [[n, step, percentile(sorted(abs(x[4]) for x in samples if policy_of.get(x[2]) == policy
                                                           and start <= x[0] <= end), 99)]
                               for n, (step, start, end) in enumerate(windows)],
        }
    for kind in ("buffer", "laggard"):  # how long each party stood paused for its buffering member
        waits = []
        for w in notes[kind]:
            resumed = {a[2] for p in players.values() if p["party_id"] == w["party"] for a in p["arrivals"]
                       if a[0] > w["seq"] and a[3] > w["paused_at_ms"]}
            if resumed:
                waits.append(min(resumed) - w["paused_at_ms"])
        out[f"{kind}_paused_ms"] = stats_ms(waits)
    out["buffer_wait_limit_ms"] = args.buffer_wait_ms
    return out


# --- driver: the scale scenario -----------------------------------------------------------------------


async def run_scale(args: argparse.Namespace, title_id: str, viewers: list[dict[str, str]], urls: dict[str, str],
                    server_pids: list[int]) -> dict[str, Any]:
    rng = random.Random(args.seed + 1)
    gens = [await Generator.start((__file__, "--players-process")) for _ in range(args.scale_procs)]
    parties: list[dict[str, Any]] = []
    try:
        specs: dict[int, list[dict[str, Any]]] = {g: [] for g in range(len(gens))}
        for k in range(args.parties):
            names = [f"s{k}-{j}" for j in range(args.members)]
            g = k % len(gens)
            parties.append({"names": names, "gen": g})
            for j, name in enumerate(names):
                viewer = viewers[(k * args.members + j) % len(viewers)]
                specs[g].append(player_spec(rng, name, "uncorrected", viewer, urls["a" if j % 2 == 0 else "b"]))
        started = time.monotonic()
        added = await asyncio.gather(*(gens[g].ask(1800, cmd="add", players=specs[g], sync=False,
                                                   concurrency=args.connect_concurrency) for g in specs))
        connect_s = time.monotonic() - started
        if sum(a["failed"] for a in added):
            raise ScenarioFailed(f"players failed to connect: {[a['errors'] for a in added]}")
        started = time.monotonic()
        seated = await asyncio.gather(*(gens[g].ask(1800, cmd="seat", content_id=title_id,
                                                    concurrency=args.seat_concurrency,
                                                    parties=[p["names"] for p in parties if p["gen"] == g])
                                        for g in range(len(gens))))
        join_s = time.monotonic() - started
        if any(a.get("error") or a["errors"] for a in seated):
            status = await ask_all(gens, 600, cmd="report")
            gone = Counter(str(p["disconnected"]) for r in status for p in r["players"].values() if p["disconnected"])
            raise ScenarioFailed(f"seating failed: {[a.get('error') or a['errors'] for a in seated]}; sockets the "
                                 f"server closed, by reason: {dict(gone)}")
        gen_pids = [g.proc.pid for g in gens]
        await asyncio.sleep(2)
        idle = CpuMeter(*server_pids, *gen_pids)
        await asyncio.sleep(args.idle)
        idle_s = idle.elapsed()
        idle_cpu = idle.used()
        busy = CpuMeter(*server_pids, *gen_pids)
        answers = await asyncio.gather(*(gens[g].ask(args.duration + 300, cmd="controls", interval_s=args.interval,
                                                     duration_s=args.duration,
                                                     hosts=[p["names"][0] for p in parties if p["gen"] == g])
                                         for g in range(len(gens))))
        await asyncio.sleep(2)  # the last deliveries
        busy_s = busy.elapsed()
        busy_cpu = busy.used()
        reports = await ask_all(gens, 600, cmd="report")
        await asyncio.gather(*(gens[g].ask(900, cmd="leave", players=[n for p in parties if p["gen"] == g
                                                                      for n in p["names"]])
                               for g in range(len(gens))))
    finally:
        for g in gens:
            await g.stop()
    records = [r for a in answers for r in a["records"]]
    errors: Counter[str] = Counter()
    for a in answers:
        errors.update(a["errors"])
    players: dict[str, dict[str, Any]] = {}
    for r in reports:
        players.update(r["players"])
    arrivals: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for p in players.values():
        for seq, _by, _at, raw, delivered in p["arrivals"]:
            arrivals.setdefault((p["party_id"], seq), []).append((raw, delivered))
    controls = [{"party": r[0], "seq": r[1], "clicked_ms": r[2], "sent_ms": r[3]} for r in records]
    members_at = {(c["party"], c["seq"]): args.members for c in controls}
    n = len(controls)
    servers = len(server_pids)
    idle_rate = sum(idle_cpu[:servers]) / idle_s
    busy_server = sum(busy_cpu[:servers])
    return {
        "parties": args.parties, "members": args.members, "sockets": len(players), "connect_s": connect_s,
        "join_s": join_s, "controls": n, "control_errors": dict(errors), "duration_s": busy_s,
        "unchanged": sum(a["unchanged"] for a in answers),
        "latency": latencies(controls, arrivals, members_at),
        "out_of_order": sum(p["out_of_order"] for p in players.values()),
        "missed": sum(missed_states(players, party_newest(players)).values()),
        "disconnected": sum(bool(p["disconnected"]) for p in players.values()),
        "member_events": member_events(players), "host_changes": sum(p["host_changes"] for p in players.values()),
        "server_cpu_idle": [c / idle_s for c in idle_cpu[:servers]],
        "server_cpu_busy": [c / busy_s for c in busy_cpu[:servers]],
        "generator_cpu_busy": sum(busy_cpu[servers:]) / busy_s,
        "cpu_ms_per_control_gross": busy_server / n * 1000 if n else NAN,
        "cpu_ms_per_control_net": (busy_server - idle_rate * busy_s) / n * 1000 if n else NAN,
    }


# --- driver: the run --------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from storage.embedded_mongo import EmbeddedMongo

    load_start = load_average()
    result: dict[str, Any] = {}
    with scratch_dir() as tmp:
        redis_proc, redis_url = start_redis(tmp)
        mongo = EmbeddedMongo(tmp / "mongo")
        procs: dict[str, Any] = {}
        logs: dict[str, Path] = {}
        db_name = f"bench_{secrets.token_hex(5)}"
        try:
            mongo_url = await asyncio.to_thread(mongo.start)
            shared = {"MONGO_URL": mongo_url, "REDIS_URL": redis_url, "NAMELESS_MONGO_DB": db_name,
                      "NAMELESS_SECRET_KEY": secrets.token_urlsafe(36),
                      "NAMELESS_RATE_LIMIT_AUTH": str(10**9), "NAMELESS_RATE_LIMIT_IP": str(10**9),
                      "NAMELESS_RATE_LIMIT_USER": str(10**9)}
            seed_env = {**shared, "NAMELESS_DATA_DIR": str(tmp / "seed")}
            title_id, _ = await seed(seed_env, 0, title=True)
            assert title_id is not None
            ports = {"a": free_port(), "b": free_port()}
            for side in ("a", "b"):
                procs[side], logs[side] = start_app(ports[side], tmp, side, **shared)
            for side in ("a", "b"):
                wait_until_answers(procs[side], ports[side], "/readyz", f"run.py {side.upper()}", logs[side], 120)
            urls = {side: f"http://127.0.0.1:{port}" for side, port in ports.items()}
            pids = [procs["a"].pid, procs["b"].pid]
            for scenario in args.scenarios:
                users = args.players if scenario == "sync" else -(-args.parties * args.members // 4)  # 4 seats each
                started = time.monotonic()
                _, viewers = await seed(seed_env, users, title=False)
                result.setdefault("seed_s", {})[scenario] = time.monotonic() - started
                load = os.getloadavg()
                try:
                    runner = run_sync if scenario == "sync" else run_scale
                    result[scenario] = await runner(args, title_id, viewers, urls, pids)
                except ScenarioFailed as failed:
                    result[scenario] = {"error": str(failed)}
                    for side in ("a", "b"):
                        tail = logs[side].read_text(errors="replace")[-3000:]
                        print(f"--- run.py {side.upper()} log, last lines:\n{tail}", file=sys.stderr)
                result[scenario]["load_average"] = load_average_line(load, os.getloadavg())
                if not args.json:
                    print_report(args, scenario, result)
            result["load_average"] = f"{load_start}-{load_average()}"
            return result
        finally:
            for side in list(procs):
                stop(procs[side], timeout=120, name=f"run.py {side.upper()}", log=logs.get(side), warn_after=30)
            if args.logs:
                save_logs(logs, Path(args.logs))
            await asyncio.to_thread(mongo.stop)
            await forget_parties(redis_url, db_name)
            if redis_proc is not None:
                stop(redis_proc, timeout=60, warn_after=15)


def save_logs(logs: dict[str, Path], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for side, log in logs.items():
        shutil.copy(log, into / f"run-{side}.log")


async def forget_parties(redis_url: str, db_name: str) -> None:
    """The run's keys in the shared Redis (party records outlive their servers for a day)."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{db_name}:*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start:start + 500])
    finally:
        await client.aclose()


# --- report ---------------------------------------------------------------------------------------


SYNC_COLUMNS = (
    Column("players", "players", 8), Column("samples", "samples", 9), Column("p50 ms", "p50_ms", 8, ".2f"),
    Column("p99 ms", "p99_ms", 8, ".2f"), Column("max ms", "max_ms", 9, ".1f"),
    Column("out of order", "out_of_order", 13), Column("missed", "missed", 7), Column("seeks", "seeks", 7),
    Column("sync p99 ms", "sync_error_p99_ms", 12, ".2f"),
)
LATENCY_COLUMNS = (
    Column("controls", "controls", 9), Column("raw p50", "raw_p50", 9, ".1f"), Column("raw p99", "raw_p99", 9, ".1f"),
    Column("all p50", "all_p50", 9, ".1f"), Column("all p99", "all_p99", 9, ".1f"),
    Column("all max", "all_max", 9, ".1f"), Column("e2e all p99", "e2e_p99", 12, ".1f"),
    Column("short", "not_all_reached", 6),
)


def latency_row(lat: dict[str, Any]) -> dict[str, Any]:
    return {"controls": lat["controls"], "raw_p50": lat["delivery_raw"]["p50"], "raw_p99": lat["delivery_raw"]["p99"],
            "all_p50": lat["all_raw"]["p50"], "all_p99": lat["all_raw"]["p99"], "all_max": lat["all_raw"]["max"],
            "e2e_p99": lat["all_e2e"]["p99"], "not_all_reached": lat["not_all_reached"]}


def print_report(args: argparse.Namespace, scenario: str, r: dict[str, Any]) -> None:
    """The figures of one scenario, printed as soon as it is over."""
    figures = r[scenario]
    print(f"\n{scenario}: {os.cpu_count()} CPUs, {figures['load_average']}; {r['seed_s'][scenario]:.0f} s to make the"
          " viewers in process", flush=True)
    if "error" in figures:
        print(f"{scenario} did not finish: {figures['error']}", flush=True)
        return
    if scenario == "sync":
        print_sync(args, figures)
    else:
        print_scale(args, figures)
    sys.stdout.flush()


def print_sync(args: argparse.Namespace, sync: dict[str, Any]) -> None:
    print(f"{args.players} players per policy in parties of {args.party_size}, half on A and half on B "
          f"(Redis), {args.procs} players processes; skew +-5 s, drift +-50 ppm, network 5-20 ms + 2 ms jitter "
          f"each way; error sampled every 100 ms for {args.steady:g} s after {args.settle:g} s of settling, "
          f"after each of {len(SCRIPT)} steps")
    print("position error |player - true position|:")
    print(header_line(SYNC_COLUMNS, 14))
    for policy, figures in sync["policies"].items():
        print(result_line(policy, figures, SYNC_COLUMNS, 14))
    print("p99 of |error| after each step, ms:")
    for policy, figures in sync["policies"].items():
        print(f"  {policy:12}" + ", ".join(f"{step} {p99:.1f}" for _, step, p99 in figures["p99_ms_by_step"]))
    print("control -> members, ms (raw: client emit -> member's socket read; all: the last member of the party;"
          " e2e: click -> player, simulated network included):")
    print(header_line(LATENCY_COLUMNS, 14))
    for policy, figures in sync["policies"].items():
        print(result_line(policy, latency_row(figures["latency"]), LATENCY_COLUMNS, 14))
    buf, lag = sync["buffer_paused_ms"], sync["laggard_paused_ms"]
    print(f"a member buffering 2 s: the party stood paused p50 {buf['p50'] / 1000:.2f} s, max "
          f"{buf['max'] / 1000:.2f} s; past the limit: the party played on by itself after p50 "
          f"{lag['p50'] / 1000:.2f} s, max "
          f"{lag['max'] / 1000:.2f} s ({lag['n']} parties; limit {sync['buffer_wait_limit_ms'] / 1000:g} s)")
    print(f"server CPU over the session: A {sync['server_cpu'][0]:.0%}, B {sync['server_cpu'][1]:.0%} of a core")
    ours = sync["policies"]["party"]
    for baseline in args.baselines:
        theirs = sync["policies"][baseline]
        print(ratio_line(f"party/{baseline} position error", {
            "p50": ours["p50_ms"] / theirs["p50_ms"], "p99": ours["p99_ms"] / theirs["p99_ms"]}))


def print_scale(args: argparse.Namespace, scale: dict[str, Any]) -> None:
    lat = scale["latency"]
    print(f"{scale['parties']} parties of {scale['members']} ({scale['sockets']} sockets, "
          f"{args.scale_procs} players processes), connected in {scale['connect_s']:.0f} s, seated in "
          f"{scale['join_s']:.0f} s; a control per party every {args.interval:g} s for {args.duration:g} s")
    print(header_line(LATENCY_COLUMNS, 14))
    print(result_line("controls", latency_row(lat), LATENCY_COLUMNS, 14))
    print(f"deliveries {lat['delivery_raw']['n']}, out of order {scale['out_of_order']}, missed {scale['missed']},"
          f" disconnected {scale['disconnected']}, refused controls {sum(scale['control_errors'].values())},"
          f" controls that changed nothing (not counted) {scale['unchanged']}")
    print(f"party.member events seen (by every member): {scale['member_events']}; party.host events seen: "
          f"{scale['host_changes']}")
    for error, count in sorted(scale["control_errors"].items(), key=lambda item: -item[1])[:5]:
        print(f"  refused {count} x: {error}")
    idle, busy = scale["server_cpu_idle"], scale["server_cpu_busy"]
    print(f"server CPU (A + B, share of a core): holding the parties {idle[0]:.0%} + {idle[1]:.0%}, "
          f"with controls {busy[0]:.0%} + {busy[1]:.0%}; players processes {scale['generator_cpu_busy']:.0%}")
    print(f"server CPU per control: {scale['cpu_ms_per_control_gross']:.2f} ms gross, "
          f"{scale['cpu_ms_per_control_net']:.2f} ms net of holding ({scale['controls']} controls, "
          f"{scale['controls'] / scale['duration_s']:.0f}/s)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", choices=("sync", "scale", "both"), default="both")
    p.add_argument("--players", type=int, default=50, help="players per policy in the sync scenario (default 50)")
    p.add_argument("--party-size", type=int, default=10, help="members per party in the sync scenario (default 10)")
    p.add_argument("--baselines", default="jellyfin,uncorrected",
                   help="policies measured beside the doc's, comma-separated (default jellyfin,uncorrected)")
    p.add_argument("--procs", type=int, default=2, help="players processes of the sync scenario (default 2)")
    p.add_argument("--settle", type=float, default=4.0, help="seconds after a step before sampling (default 4)")
    p.add_argument("--steady", type=float, default=4.0, help="seconds of sampling after each step (default 4)")
    p.add_argument("--stagger", type=float, default=0.1, help="seconds between the parties' controls (default 0.1)")
    p.add_argument("--buffer-wait-ms", type=int, default=None, help="the server's wait limit (default: its own)")
    p.add_argument("--parties", type=int, default=500, help="parties in the scale scenario (default 500)")
    p.add_argument("--members", type=int, default=10, help="members per party in the scale scenario (default 10)")
    p.add_argument("--scale-procs", type=int, default=4, help="players processes of the scale scenario (default 4)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between a host's controls (default 10)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of controls (default 60)")
    p.add_argument("--idle", type=float, default=10.0, help="seconds measured without controls first (default 10)")
    p.add_argument("--connect-concurrency", type=int, default=10, help="connects in flight per players process")
    p.add_argument("--seat-concurrency", type=int, default=5, help="creates and joins in flight per players process")
    p.add_argument("--logs", default=None, help="copy the two servers' logs into this directory")
    p.add_argument("--seed", type=int, default=20)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return p


def main() -> int:
    if sys.argv[1:] == ["--players-process"]:
        asyncio.run(players_main())
        return 0
    args = _parser().parse_args()
    args.scenarios = ("sync", "scale") if args.scenario == "both" else (args.scenario,)
    args.baselines = [b for b in args.baselines.split(",") if b]
    unknown = [b for b in args.baselines if b not in POLICIES or b == "party"]
    if unknown:
        sys.exit(f"unknown baselines {unknown}; choose from {sorted(set(POLICIES) - {'party'})}")
    if args.buffer_wait_ms is None:
        from server.party.state import BUFFER_WAIT_MS

        args.buffer_wait_ms = BUFFER_WAIT_MS
    if args.party_size > 20 or args.members > 20:
        from server.party.state import MAX_MEMBERS

        if max(args.party_size, args.members) > MAX_MEMBERS:
            sys.exit(f"a party holds at most {MAX_MEMBERS} members")
    raise_nofile()
    r = asyncio.run(run(args))
    if args.json:
        print(json.dumps({**{k: v for k, v in vars(args).items() if k != "scenarios"}, **r}, default=str))
    bad = sum("error" in r.get(s, {}) for s in args.scenarios)
    for figures in (r.get("sync") or {}).get("policies", {}).values():
        bad += figures["out_of_order"] + figures["missed"] + figures["disconnected"]
    if r.get("scale") and "error" not in r["scale"]:
        bad += r["scale"]["out_of_order"] + r["scale"]["missed"] + r["scale"]["disconnected"]
    if bad:
        print("warning: a scenario failed, or states were missed or out of order, or sockets dropped: the figures"
              " are suspect", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
