"""Fan-out: time for one staff announcement, sent over HTTP, to reach every connected
Socket.IO client (1,000 and 10,000), through the app against a bare python-socketio server
on Tornado triggered the same way, same run, same load generator.

    .venv/bin/python bench/socket_fanout.py [--sizes 1000,2000] [--rounds 5] [--deflate]
    .venv/bin/python bench/socket_fanout.py --sizes 10000 --soak 600 [--soak-bare 180]

What is measured, and why this way: the trigger is the one an operator uses for the
product's widest fan-out, a staff announcement to everybody: the driver (an admin) sends
`POST /api/v1/admin/announcements {title, body, audience: "all", expires_at}` over HTTP,
and every socket on "/" (all of them join the room `announcements` on connect) receives
the event `announcement`. `socket_fanout.py --serve-app PORT` is the real server built the
way run.py builds it (`server.app.runtime.Runtime`: embedded nx-27017, platform, services,
the app's routes, the Gateway with its UserChannel on "/"), plus two bench-only routes
added to the same Tornado application:

- `POST /bench/tokens?users=N[&role=admin]`: creates N users (with `role=admin`: roles
  admin and viewer, as the tests make staff) and a session for each through the app's own
  services (AccountService.create_user without a password, so no argon2, and
  SessionService.start) and returns their access tokens;
- `GET /bench/stats`: how many sockets are in the room `announcements` here, and how many
  room-channel messages this process received from the others (RedisRooms).

The announcement itself goes through the real route: the auth check and the admin
permission, validation, the insert, the audit record, the pub/sub message, then
`Gateway.emit("announcement", ..., room="announcements")` (the app's emit path: its
manager, latency histogram and counters). Each announcement expires `EXPIRES_S` after it
is sent, so the sockets of the next size or layout are not sent the previous rounds' on
connect (any that still are get drained before the first round).

Clients connect through the real handshake and the real UserChannel `on_connect` (token
check against the database, per-user cap, registry, metrics, joining `user:{id}` and
`announcements`), so each socket carries the app's real per-connection state. The baseline
(`--serve-bare PORT`) is a python-socketio `AsyncServer(async_mode="tornado")` that accepts
every connection and puts it in the room `announcements`, with the same bench routes and
a tiny `POST /api/v1/admin/announcements` that emits `announcement` (same fields) to that
room and answers 201 with its id: both servers are triggered over HTTP the same way.

The load generator (`sio_load.py`, raw websocket Socket.IO clients, 2,500 sockets per
process) holds N sockets on one server at a time (bare first, then the app; the other
server is idle meanwhile: on 2 cores, 10,000 idle sockets on the other server would cost
it a large share of a core in Engine.IO pings), and stamps every `announcement` with
`time.time()` as its bytes are read. Latency of one delivery = arrival - t0, t0 being the
driver's `time.time()` just before it sends the POST (same machine, same clock), so it
includes the request. For each server and size: one warm-up announcement, then `--rounds`;
it prints p50, p99 and max over every delivery of every round, how long the POST took to
be answered, and the CPU the server and the generators used while delivering, per
recipient, and the CPU each server spent closing every socket at once.

`--soak SECONDS` holds the last `--sizes` room on the app that long instead, one
announcement every `--interval` s (5; the next one at once when a round ran over, counted
as late), the server's VmRSS every `--sample` s (10); then the same on the bare server for
`--soak-bare` s (default as long; 0: not at all). Each client counts every event it got
since it connected; a client with fewer than the announcements sent lost the difference,
a dropped socket all of them. It prints RSS first/last/max and growth, deliveries and
losses, and p50/p99 per minute of the soak (every round's in the JSON).

`--split` measures the cross-process case instead: three app processes on one Redis and
one database (A, B, C), the last `--sizes` room first whole on A, then half on A and half
on B, each announcement sent to A; it prints p50/p99 of both layouts, the ratio split/one,
and how many room messages reached C, which holds no member (expected 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from harness import (
    NAN,
    ROOT,
    CpuMeter,
    app_env,
    free_port,
    load_average,
    percentile,
    raise_nofile,
    ratio_line,
    rss_kb,
    scratch_dir,
    start_script,
    stop,
    wait_for_stop_signal,
    wait_idle,
    wait_until_answers,
)
from sio_load import (
    PER_USER,
    close_all,
    connect_all,
    generators_for,
    serve_bare_socketio,
    start_generators,
    status_all,
)

ROOM = "announcements"  # server.notifications.announcements.ANNOUNCEMENTS_ROOM: every socket on "/"
ANNOUNCE = "/api/v1/admin/announcements"
EXPIRES_S = 15.0  # an announcement's life: long enough for its round, over before the next size connects


# --- the two servers (each runs in its own process) -----------------------------------------


def bench_routes(sio: Any, mint: Any) -> list:
    """The bench routes, the same for the app and the bare server."""
    import tornado.web

    class BenchHandler(tornado.web.RequestHandler):
        def check_xsrf_cookie(self) -> None:  # the app turns XSRF on; these are loopback bench routes
            pass

    class Tokens(BenchHandler):
        async def post(self) -> None:
            users, role = int(self.get_query_argument("users")), self.get_query_argument("role", None)
            self.finish({"tokens": await mint(users, [role] if role else [])})

    class Stats(BenchHandler):
        def get(self) -> None:  # room-channel messages this process received from others (RedisRooms)
            self.finish({"room": sum(1 for _ in sio.manager.get_participants("/", ROOM)),
                         "room_messages": getattr(sio.manager, "room_messages", None)})

    return [(r"/bench/tokens", Tokens), (r"/bench/stats", Stats)]


def serve_app() -> None:
    """The real server, built as run.py builds it, plus the bench routes."""
    sys.path.insert(0, str(ROOT))
    from config import load_settings
    from run import tune_process
    from server.app.runtime import Runtime
    from server.core.logs import configure_logging
    from server.identity.sessions import ClientInfo

    settings = load_settings()
    configure_logging(settings.log_level)

    async def main() -> None:
        runtime = Runtime(settings)
        await runtime.start()
        tune_process()  # what run.py serve does once started: open-files limit, gc.freeze
        assert runtime.services is not None and runtime.app is not None
        services = runtime.services
        run_id = secrets.token_hex(4)
        made = 0

        async def mint(users: int, roles: list[str]) -> list[str]:
            nonlocal made
            tokens: list[str] = []
            for start in range(0, users, 50):
                async def one(i: int) -> str:
                    user = await services.accounts.create_user(
                        f"fan-{run_id}-{i}@example.com", f"Fan {i}", password=None, email_verified=True,
                        roles=[*roles, "viewer"])
                    pair = await services.sessions.start(str(user["_id"]), ClientInfo(ip="127.0.0.1"),
                                                         method="password")
                    return pair.access_token
                tokens += await asyncio.gather(*(one(made + i) for i in range(start, min(users, start + 50))))
            made += users
            return tokens

        runtime.app.add_handlers(r".*$", bench_routes(services.gateway.sio, mint))
        await wait_for_stop_signal()
        await runtime.stop()

    asyncio.run(main())


def serve_bare(port: int) -> None:
    """python-socketio on Tornado putting every connection on "/" in the room, plus the bench
    routes and a tiny announcement route emitting to that room."""
    import tornado.web

    async def mint(users: int, roles: list[str]) -> list[str]:
        return ["bare"] * users

    def routes(sio: Any) -> list:
        class Announce(tornado.web.RequestHandler):
            async def post(self) -> None:
                body = json.loads(self.request.body)
                event = {"id": secrets.token_hex(12), "title": body["title"], "body": body["body"],
                         "created_ms": int(time.time() * 1000), "expires_ms": None}
                await sio.emit("announcement", event, room=ROOM, namespace="/")
                self.set_status(201)
                self.finish({"id": event["id"], "audience": body["audience"]})

        return [(ANNOUNCE, Announce), *bench_routes(sio, mint)]

    serve_bare_socketio(port, routes, rooms=(ROOM,))


# --- driver -----------------------------------------------------------------------------------


async def announce(api: httpx.AsyncClient, admin: dict[str, str], seq: int) -> tuple[float, float, str]:
    """One staff announcement to everybody, as an operator sends it: (t0, seconds until the
    POST was answered, the announcement's id)."""
    t0 = time.time()
    expires = datetime.fromtimestamp(t0 + EXPIRES_S, UTC).isoformat()
    resp = await api.post(ANNOUNCE, headers=admin, json={
        "title": f"Fan-out {seq}", "body": "One notice to every connected viewer.", "audience": "all",
        "expires_at": expires})
    answered = time.time() - t0
    if resp.status_code != 201:
        sys.exit(f"announcement refused: {resp.status_code} {resp.text[:300]}")
    return t0, answered, resp.json()["id"]


def arrivals_of(taken: list[dict[str, Any]], t0: float, announcement: str) -> list[float]:
    return [at - t0 for t in taken for at, event, data in t["events"]
            if event == "announcement" and isinstance(data, dict) and data.get("id") == announcement]


async def drain(gens: list, group: str) -> int:
    """Forget what the sockets received so far (announcements still active when they connected)."""
    return sum(len(t["events"]) for t in await asyncio.gather(*(g.ask(120, cmd="take", group=group) for g in gens)))


async def admin_headers(api: httpx.AsyncClient) -> dict[str, str]:
    resp = await api.post("/bench/tokens?users=1&role=admin")
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['tokens'][0]}"}


async def room_size(api: httpx.AsyncClient) -> int:
    return (await api.get("/bench/stats")).json()["room"]


async def one_round(name: str, proc: Any, api: httpx.AsyncClient, admin: dict[str, str], gens: list, seq: int,
                    live: int, timeout: float) -> dict[str, Any]:
    meter = CpuMeter(proc.pid, *(g.proc.pid for g in gens))
    t0, answered, announcement = await announce(api, admin, seq)
    waits = await asyncio.gather(*(g.ask(timeout + 30, cmd="wait", group=name, per_client=1, timeout=timeout)
                                   for g in gens))
    wall = meter.elapsed()
    window_cpu, *gen_used = meter.used()
    window_gen = sum(gen_used)
    taken = await asyncio.gather(*(g.ask(120, cmd="take", group=name) for g in gens))
    return {"t0": t0, "emit_s": answered, "latencies": sorted(arrivals_of(taken, t0, announcement)),
            "expected": live, "complete": all(w["complete"] for w in waits), "server_cpu_s": window_cpu,
            "generator_cpu_s": window_gen, "window_s": wall}


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    lat = sorted(x for r in rounds for x in r["latencies"])
    window = sum(r["window_s"] for r in rounds)
    emits = sorted(r["emit_s"] for r in rounds)
    return {
        "rounds": len(rounds),
        "delivered": len(lat), "expected": sum(r["expected"] for r in rounds),
        "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
        "max_ms": lat[-1] * 1000 if lat else NAN,
        "round_p99_ms": [percentile(sorted(r["latencies"]), 99) * 1000 for r in rounds],
        "emit_call_ms": percentile(emits, 50) * 1000,  # until the announcement's POST was answered
        "server_cpu_share": sum(r["server_cpu_s"] for r in rounds) / window if window else NAN,
        "generator_cpu_share": sum(r["generator_cpu_s"] for r in rounds) / window if window else NAN,
        "server_cpu_s_per_round": sum(r["server_cpu_s"] for r in rounds) / len(rounds),
        "generator_cpu_s_per_round": sum(r["generator_cpu_s"] for r in rounds) / len(rounds),
    }


async def run_size(size: int, servers: dict[str, tuple[Any, int]], args: argparse.Namespace) -> dict[str, Any]:
    """Each server in turn, alone: connect `size` sockets, put them in the room, emit
    (1 warm-up + `--rounds`), close them all and wait until the server is idle again."""
    gens = await start_generators(generators_for(size))
    out: dict[str, Any] = {"generators": len(gens)}
    seq = 0
    try:
        for name, (proc, port) in servers.items():
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as api:
                admin = await admin_headers(api)
                users = -(-size // PER_USER)
                resp = await api.post(f"/bench/tokens?users={users}")
                resp.raise_for_status()
                tokens = [t for t in resp.json()["tokens"] for _ in range(PER_USER)][:size]
                connected = await connect_all(gens, name, port, tokens, concurrency=args.concurrency,
                                              deflate=args.deflate)
                live = (await status_all(gens, name))["live"]
                await wait_idle(proc.pid, timeout=30)
                joined = await room_size(api)
                out[f"{name}_connect"] = {**connected, "joined": joined, "drained": await drain(gens, name)}
                print(f"{size}: {name}: {connected['ok']}/{size} connected in {connected['seconds']:.1f} s,"
                      f" {joined} in the room", file=sys.stderr)
                rounds = []
                for r in range(args.rounds + 1):  # round 0 is a warm-up, not counted
                    seq += 1
                    result = await one_round(name, proc, api, admin, gens, seq, live, args.timeout)
                    if r > 0:
                        rounds.append(result)
                    await asyncio.sleep(args.pause)
                out[name] = summarize(rounds)
                state = await status_all(gens, name)
                out[name].update(dropped=state["closed"], close_reasons=state["close_reasons"])
                await close_all(gens, name)
                cpu, busy = await wait_idle(proc.pid)  # let it digest the disconnects before what comes next
                out[f"{name}_close"] = {"cpu_s": cpu, "busy_s": busy}
    finally:
        for g in gens:
            await g.stop()
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    load_start = load_average()
    with scratch_dir() as tmp:
        app_port, bare_port = free_port(), free_port()
        app, app_log = start_script(__file__, ["--serve-app"], tmp, "app",
                                    app_env(app_port, tmp / "app", PYTHONPATH=str(ROOT)))
        bare, bare_log = start_script(__file__, ["--serve-bare", str(bare_port)], tmp, "bare")
        try:
            wait_until_answers(app, app_port, "/readyz", "app bench server", app_log)
            wait_until_answers(bare, bare_port, "/healthz", "bare socketio", bare_log)
            servers = {"bare": (bare, bare_port), "app": (app, app_port)}
            for size in args.sizes:
                results[str(size)] = await run_size(size, servers, args)
                results[str(size)]["load_average"] = f"{load_start}-{load_average()}"
        finally:
            stop(app, timeout=60, name="run.py", log=app_log, warn_after=15)
            stop(bare, timeout=60, name="bare server", log=bare_log, warn_after=15)
    return results


# --- soak: one room held for minutes, an announcement every few seconds ------------------------


async def sample_rss(pid: int, every: float, samples: list[tuple[float, int]], started: float) -> None:
    """Append (seconds since `started`, VmRSS KB) every `every` s until cancelled."""
    while True:
        samples.append((time.monotonic() - started, rss_kb(pid, default=-1)))
        await asyncio.sleep(every)


async def soak_one(name: str, proc: Any, port: int, gens: list, seconds: float, args: argparse.Namespace
                   ) -> dict[str, Any]:
    """Hold the room on one server for `seconds`: an announcement every `--interval` s (the
    next one at once when a round ran over), the server's RSS every `--sample` s, then
    every client's count of deliveries against the announcements sent."""
    size = args.sizes[-1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as api:
        admin = await admin_headers(api)
        resp = await api.post(f"/bench/tokens?users={-(-size // PER_USER)}")
        resp.raise_for_status()
        tokens = [t for t in resp.json()["tokens"] for _ in range(PER_USER)][:size]
        connected = await connect_all(gens, name, port, tokens, concurrency=args.concurrency, deflate=args.deflate)
        await wait_idle(proc.pid, timeout=30)
        drained = await drain(gens, name)
        before = await status_all(gens, name)
        out: dict[str, Any] = {"connected": connected["ok"], "connect_s": connected["seconds"],
                               "joined": await room_size(api), "drained": drained,
                               "received_before": before["received"]}
        print(f"soak {name}: {connected['ok']}/{size} connected in {connected['seconds']:.1f} s,"
              f" {out['joined']} in the room; {seconds:g} s, an announcement every {args.interval:g} s",
              file=sys.stderr)
        samples: list[tuple[float, int]] = []
        rounds: list[dict[str, Any]] = []
        started, wall_started = time.monotonic(), time.time()
        sampler = asyncio.create_task(sample_rss(proc.pid, args.sample, samples, started))
        try:
            seq = 0
            while seq * args.interval < seconds:  # bounded by --soak
                due = started + seq * args.interval
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                seq += 1
                late = time.monotonic() - due
                live = (await status_all(gens, name))["live"]
                r = await one_round(name, proc, api, admin, gens, seq, live, args.timeout)
                lat = r["latencies"]
                rounds.append({"at_s": r["t0"] - wall_started, "late_s": late,
                               "expected": r["expected"], "delivered": len(lat), "complete": r["complete"],
                               "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
                               "post_ms": r["emit_s"] * 1000, "server_cpu_s": r["server_cpu_s"]})
        finally:
            sampler.cancel()
        samples.append((time.monotonic() - started, rss_kb(proc.pid, default=-1)))
        after = await status_all(gens, name)
    return {**out, **soak_summary(rounds, samples, before, after)}


def soak_summary(rounds: list[dict[str, Any]], samples: list[tuple[float, int]], before: dict[str, Any],
                 after: dict[str, Any]) -> dict[str, Any]:
    """Deliveries per client (each live client should have received one more event per
    announcement than it had before the first), and RSS first/last/max and growth."""
    sent = len(rounds)
    start_count = max(before["received"], key=lambda k: before["received"][k], default=0)
    short = {k: n for k, n in after["received"].items() if k < start_count + sent}
    lost = sum((start_count + sent - k) * n for k, n in short.items())
    lost += (before["live"] - after["live"]) * sent  # a dropped socket: count its whole share
    rss = [kb for _, kb in samples if kb >= 0]
    return {
        "announcements": sent, "rounds": rounds, "rss_samples": samples,
        "expected": sum(r["expected"] for r in rounds), "delivered": sum(r["delivered"] for r in rounds),
        "clients_short": sum(short.values()), "lost": lost,
        "extra": sum((k - start_count - sent) * n for k, n in after["received"].items() if k > start_count + sent),
        "dropped": after["closed"] - before["closed"], "close_reasons": after["close_reasons"],
        "late_rounds": sum(1 for r in rounds if r["late_s"] > 0.5),
        "max_late_s": max((r["late_s"] for r in rounds), default=0.0),
        "rss_first_kb": rss[0] if rss else -1, "rss_last_kb": rss[-1] if rss else -1,
        "rss_max_kb": max(rss, default=-1),
        "rss_growth": rss[-1] / rss[0] - 1 if rss else NAN,
    }


def rss_growth_until(samples: list[tuple[float, int]], seconds: float) -> float:
    """RSS growth from the first sample to the last one taken within `seconds`."""
    within = [kb for at, kb in samples if at <= seconds + 1 and kb >= 0]
    return within[-1] / within[0] - 1 if within else NAN


async def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    """The app, then the bare server (for `--soak-bare` s; 0: not at all), each alone with
    the room of the last `--sizes`."""
    size = args.sizes[-1]
    out: dict[str, Any] = {"size": size, "seconds": args.soak, "interval": args.interval,
                           "load_average_start": load_average()}
    with scratch_dir() as tmp:
        app_port, bare_port = free_port(), free_port()
        app, app_log = start_script(__file__, ["--serve-app"], tmp, "app",
                                    app_env(app_port, tmp / "app", PYTHONPATH=str(ROOT)))
        bare, bare_log = start_script(__file__, ["--serve-bare", str(bare_port)], tmp, "bare")
        gens = await start_generators(generators_for(size))
        try:
            wait_until_answers(app, app_port, "/readyz", "app bench server", app_log)
            wait_until_answers(bare, bare_port, "/healthz", "bare socketio", bare_log)
            out["generators"] = len(gens)
            out["app"] = await soak_one("app", app, app_port, gens, args.soak, args)
            out["load_average_app_end"] = load_average()
            await close_all(gens, "app")
            stop(app, timeout=60, name="run.py", log=app_log, warn_after=15)
            if args.soak_bare > 0:
                out["bare"] = await soak_one("bare", bare, bare_port, gens, args.soak_bare, args)
                out["app"]["rss_growth_same_span"] = rss_growth_until(out["app"]["rss_samples"], args.soak_bare)
        finally:
            for g in gens:
                await g.stop()
            stop(app, timeout=60, name="run.py", log=app_log, warn_after=15)
            stop(bare, timeout=60, name="bare server", log=bare_log, warn_after=15)
    out["load_average_end"] = load_average()
    return out


def print_soak(res: dict[str, Any]) -> None:
    print(f"Soak: {res['size']} sockets held, an announcement to everybody every {res['interval']:g} s,"
          f" {res['generators']} generator processes, {os.cpu_count()} CPUs, load average"
          f" {res['load_average_start']} at start, {res['load_average_end']} at end")
    for name in ("app", "bare"):
        if name not in res:
            continue
        r = res[name]
        minutes: dict[int, list[dict[str, Any]]] = {}
        for one in r["rounds"]:
            minutes.setdefault(int(one["at_s"] // 60), []).append(one)
        rss_at = dict(r["rss_samples"])
        print(f"{'nameless app' if name == 'app' else 'bare socketio'}: {r['announcements']} announcements,"
              f" {r['delivered']}/{r['expected']} delivered, lost {r['lost']} ({r['clients_short']} clients short),"
              f" dropped sockets {r['dropped']}, rounds started late {r['late_rounds']} (max {r['max_late_s']:.1f} s)")
        print(f"  RSS first {r['rss_first_kb'] / 1024:.1f} MB, last {r['rss_last_kb'] / 1024:.1f} MB,"
              f" max {r['rss_max_kb'] / 1024:.1f} MB: growth {r['rss_growth']:+.1%}"
              + (f" ({r['rss_growth_same_span']:+.1%} over the bare soak's span)"
                 if "rss_growth_same_span" in r else ""))
        print(f"  {'minute':>6}{'rounds':>8}{'delivered':>14}{'p50 ms':>9}{'p99 ms':>9}{'worst p99':>11}"
              f"{'POST ms':>9}{'RSS MB':>9}")
        for minute, group in sorted(minutes.items()):
            p50s = sorted(x["p50_ms"] for x in group)
            p99s = sorted(x["p99_ms"] for x in group)
            rss = [kb for at, kb in rss_at.items() if minute * 60 <= at < (minute + 1) * 60 and kb >= 0]
            print(f"  {minute:>6}{len(group):>8}{sum(x['delivered'] for x in group):>7}/"
                  f"{sum(x['expected'] for x in group):<6}{statistics.median(p50s):>9.1f}"
                  f"{statistics.median(p99s):>9.1f}{p99s[-1]:>11.1f}"
                  f"{statistics.median(x['post_ms'] for x in group):>9.1f}"
                  f"{(rss[-1] / 1024 if rss else NAN):>9.1f}")
    print("(per minute of the soak: median of the rounds' p50 and p99, the worst round's p99, the last RSS"
          " sample of the minute; latency from just before the admin's POST to the client reading `announcement`)")


# --- one room split over two processes (Redis) ---------------------------------------------


async def split_round(api: httpx.AsyncClient, admin: dict[str, str], gens: list, groups: list[str], seq: int,
                      timeout: float, pids: list[int]) -> dict[str, Any]:
    meter = CpuMeter(*pids, *(g.proc.pid for g in gens))
    t0, answered, announcement = await announce(api, admin, seq)
    for group in groups:
        await asyncio.gather(*(g.ask(timeout + 30, cmd="wait", group=group, per_client=1, timeout=timeout)
                               for g in gens))
    cpu, gen_cpu = meter.used()[:len(pids)], meter.used()[len(pids):]
    sides = {}
    for group in groups:
        sides[group[-1]] = sorted(arrivals_of(await asyncio.gather(*(g.ask(120, cmd="take", group=group)
                                                                      for g in gens)), t0, announcement))
    return {"latencies": sorted(x for lat in sides.values() for x in lat), "sides": sides,
            "server_cpu_s": sum(cpu), "side_cpu_s": dict(zip(sides, cpu, strict=True)),
            "generator_cpu_s": sum(gen_cpu), "post_s": answered}


async def run_split(args: argparse.Namespace) -> dict[str, Any]:
    """The app on Redis, three processes A, B, C on one database: the room whole on A,
    then half on A and half on B, emitting on A; C never holds a member."""
    sys.path.insert(0, str(ROOT))
    from socket_cross_process import start_redis

    from storage.embedded_mongo import EmbeddedMongo

    size = args.sizes[-1]
    out: dict[str, Any] = {"size": size, "load_average_start": load_average()}
    with scratch_dir() as tmp:
        redis_proc, redis_url = start_redis(tmp)
        mongo = EmbeddedMongo(tmp / "mongo")
        procs: dict[str, Any] = {}
        try:
            shared = {"MONGO_URL": await asyncio.to_thread(mongo.start), "REDIS_URL": redis_url,
                      "NAMELESS_MONGO_DB": f"bench_{secrets.token_hex(5)}", "PYTHONPATH": str(ROOT),
                      "NAMELESS_SECRET_KEY": secrets.token_urlsafe(36)}
            ports = {side: free_port() for side in "abc"}
            for side in "abc":
                procs[side] = start_script(__file__, ["--serve-app"], tmp, side,
                                           app_env(ports[side], tmp / side, **shared))
            for side in "abc":
                wait_until_answers(procs[side][0], ports[side], "/readyz", f"app {side}", procs[side][1])
            apis = {side: httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[side]}", timeout=600) for side in "abc"}
            gens = await start_generators(generators_for(size))
            try:
                admin = await admin_headers(apis["a"])
                resp = await apis["a"].post(f"/bench/tokens?users={-(-size // PER_USER)}")
                tokens = [t for t in resp.json()["tokens"] for _ in range(PER_USER)][:size]
                seq = 0
                for layout, parts in (("one process", {"a": tokens}),
                                      ("split A+B", {"a": tokens[: size // 2], "b": tokens[size // 2:]})):
                    groups = [f"{layout}:{side}" for side in parts]
                    for (side, part), group in zip(parts.items(), groups, strict=True):
                        await connect_all(gens, group, ports[side], part, concurrency=args.concurrency)
                    pids = [procs[side][0].pid for side in parts]
                    for pid in pids:
                        await wait_idle(pid, timeout=30)
                    for group in groups:
                        await drain(gens, group)
                    out[layout] = {"room": {side: await room_size(apis[side]) for side in parts}}
                    before_c = (await apis["c"].get("/bench/stats")).json()["room_messages"]
                    rounds = []
                    for r in range(args.rounds + 1):
                        seq += 1
                        result = await split_round(apis["a"], admin, gens, groups, seq, args.timeout, pids)
                        if r > 0:
                            rounds.append(result)
                        await asyncio.sleep(args.pause)
                    lat = sorted(x for r in rounds for x in r["latencies"])
                    out[layout]["sides"] = {side: side_summary(rounds, side) for side in parts}
                    out[layout] |= {"delivered": len(lat), "expected": size * len(rounds),
                                   "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
                                   "server_cpu_s_per_round": sum(r["server_cpu_s"] for r in rounds) / len(rounds),
                                   "generator_cpu_s_per_round":
                                       sum(r["generator_cpu_s"] for r in rounds) / len(rounds),
                                   "post_ms": percentile(sorted(r["post_s"] for r in rounds), 50) * 1000,
                                   "c_room_messages": (await apis["c"].get("/bench/stats")).json()["room_messages"]
                                   - before_c}
                    for group in groups:
                        await close_all(gens, group)
                    for pid in pids:
                        await wait_idle(pid)
            finally:
                for g in gens:
                    await g.stop()
                for api in apis.values():
                    await api.aclose()
        finally:
            for side, (proc, log) in procs.items():
                stop(proc, timeout=60, name=f"app {side}", log=log, warn_after=15)
            await asyncio.to_thread(mongo.stop)
            if redis_proc is not None:
                stop(redis_proc, timeout=10, name="redis-server")
    out["load_average_end"] = load_average()
    return out


def side_summary(rounds: list[dict[str, Any]], side: str) -> dict[str, float]:
    """One process's members: when the first and last of them read the announcement
    (median over rounds), p50/p99 over every round, and that process's CPU per round."""
    lats = [r["sides"][side] for r in rounds if r["sides"][side]]
    every = sorted(x for lat in lats for x in lat)
    return {"first_ms": percentile(sorted(lat[0] for lat in lats), 50) * 1000,
            "last_ms": percentile(sorted(lat[-1] for lat in lats), 50) * 1000,
            "p50_ms": percentile(every, 50) * 1000, "p99_ms": percentile(every, 99) * 1000,
            "cpu_s_per_round": sum(r["side_cpu_s"][side] for r in rounds) / len(rounds)}


def print_split(res: dict[str, Any]) -> None:
    print(f"One room of {res['size']} over Redis, announcements sent to A: whole on A, then split over A and B;"
          f" C holds no member (load average {res['load_average_start']}-{res['load_average_end']})")
    for layout in ("one process", "split A+B"):
        r = res[layout]
        print(f"  {layout:12} {r['delivered']:>6}/{r['expected']:<6} p50 {r['p50_ms']:7.1f} ms"
              f"  p99 {r['p99_ms']:7.1f} ms  server CPU/round {r['server_cpu_s_per_round']:.2f} s"
              f"  generators CPU/round {r['generator_cpu_s_per_round']:.2f} s  POST {r['post_ms']:.1f} ms"
              f"  messages reaching C: {r['c_room_messages']}  in the room: {r['room']}")
        for side, v in r["sides"].items():
            print(f"    on {side.upper()}: first {v['first_ms']:6.1f} ms  p50 {v['p50_ms']:6.1f} ms"
                  f"  p99 {v['p99_ms']:6.1f} ms  last {v['last_ms']:6.1f} ms  CPU/round {v['cpu_s_per_round']:.2f} s")
    print(f"  {ratio_line('split/one', {'p99': res['split A+B']['p99_ms'] / res['one process']['p99_ms']})}")


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=_sizes, default=[1000, 2000],
                   help="room sizes (default 1000,2000; target 1000,10000)")
    p.add_argument("--rounds", type=int, default=5, help="measured emits per server and size (default 5)")
    p.add_argument("--pause", type=float, default=0.5, help="seconds between emits (default 0.5)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one emit's deliveries")
    p.add_argument("--concurrency", type=int, default=100, help="handshakes in flight over all generators")
    p.add_argument("--deflate", action="store_true", help="offer permessage-deflate, as browsers do")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--split", action="store_true",
                   help="instead: the app alone on Redis, the last size's room whole on one process, then split"
                        " over two, a third process without members")
    p.add_argument("--soak", type=float, metavar="SECONDS", default=0.0,
                   help="instead: hold the last size's room this long on the app, an announcement every"
                        " --interval s, RSS every --sample s (the target: --sizes 10000 --soak 600)")
    p.add_argument("--soak-bare", type=float, metavar="SECONDS",
                   help="then the same on the bare server for this long (default: as --soak; 0: skip it)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between announcements in --soak")
    p.add_argument("--sample", type=float, default=10.0, help="seconds between RSS readings in --soak")
    p.add_argument("--serve-app", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return p


def main() -> int:
    args = _parser().parse_args()
    if args.serve_app:
        serve_app()
        return 0
    if args.serve_bare is not None:
        serve_bare(args.serve_bare)
        return 0
    raise_nofile()
    if args.soak > 0:
        if args.soak_bare is None:
            args.soak_bare = args.soak
        res = asyncio.run(run_soak(args))
        if args.json:
            print(json.dumps(res))
        print_soak(res)
        return 0 if all(res[n]["lost"] == 0 and res[n]["dropped"] == 0 for n in ("app", "bare") if n in res) else 1
    if args.split:
        res = asyncio.run(run_split(args))
        if args.json:
            print(json.dumps(res))
        print_split(res)
        return 0 if all(res[k]["delivered"] == res[k]["expected"] for k in ("one process", "split A+B")) else 1
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps({"sizes": args.sizes, "rounds": args.rounds, "deflate": args.deflate, **results}))
    else:
        print(f"Fan-out of one staff announcement to everybody: {args.rounds} rounds per server and size (+1 warm-up),"
              f" one server at a time, deflate {'offered' if args.deflate else 'off'}, {os.cpu_count()} CPUs")
        print(f"{'room':>6} {'':13}{'delivered':>12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'POST ms':>14}"
              f"{'srv CPU':>9}{'gen CPU':>9}")
        for size, res in results.items():
            for name, label in (("bare", "bare socketio"), ("app", "nameless app")):
                r = res[name]
                print(f"{size:>6} {label:13}{r['delivered']:>6}/{r['expected']:<5}{r['p50_ms']:>9.1f}"
                      f"{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}{r['emit_call_ms']:>14.1f}{r['server_cpu_share']:>9.0%}"
                      f"{r['generator_cpu_share']:>9.0%}")
            a, b = res["app"], res["bare"]
            ratios = {"p50": a["p50_ms"] / b["p50_ms"], "p99": a["p99_ms"] / b["p99_ms"]}
            per = {n: res[n]["server_cpu_s_per_round"] / max(res[n]["expected"] / res[n]["rounds"], 1) * 1e6
                   for n in ("bare", "app")}
            print(f"{size:>6} server CPU per recipient: app {per['app']:.1f} us, bare {per['bare']:.1f} us"
                  f" ({per['app'] / per['bare']:.2f}); closing all: app {res['app_close']['cpu_s']:.2f} s CPU,"
                  f" bare {res['bare_close']['cpu_s']:.2f} s")
            print(f"{size:>6} {ratio_line('app/bare', ratios)}"
                  f" ({res['generators']} generator processes; load average {res['load_average']})")
        print("(latency: just before the admin's POST /api/v1/admin/announcements -> `announcement` read by the"
              " client; POST ms: until the POST was answered; CPU: share of one core"
              " from the trigger until every generator had all its deliveries, server process and all generator"
              " processes together)")
    bad = [f"{size}/{name}" for size, res in results.items() for name in ("bare", "app")
           if res[name]["delivered"] < res[name]["expected"]]
    if bad:
        print(f"warning: deliveries missing for {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
