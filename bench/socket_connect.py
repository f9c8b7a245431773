"""What one authenticated Socket.IO connect costs the app, against a bare python-socketio
server on Tornado, same run, same generators; and how long a reconnect storm takes.

    .venv/bin/python bench/socket_connect.py [--clients 2000] [--storm 5000]

Starts `run.py` with Redis (REDIS_URL, default redis://127.0.0.1:6379/0: the per-user
socket cap then counts every process, as in production) and a bare python-socketio
`AsyncServer(async_mode="tornado")` that accepts every connection, each as its own
subprocess. Signs up clients/10 users through the API (10 sockets per user is the cap).

Connect cost: the generators (`sio_load.py`) open `--clients` websocket sockets to each
server, close them, and open them again; the server's CPU seconds while connecting,
divided by the sockets, is the CPU per connect. The first round is cold (every token new
to the process: JWT verified, session and account read); the second is what a reconnect
within the sign-in cache lifetime costs.

Reconnect storm: `--storm` sockets connected, the server restarted (SIGTERM, start
again), then all of them connecting at once (as apps do when their socket drops): the
seconds until all are back, and how many failed, for the app and for bare; and how long
the SIGTERM of the server holding them took to end it.

Rate limits on sign-up are raised so that the sign-ups (all from 127.0.0.1) are not 429.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid

from harness import CpuMeter, free_port, load_average, ratio_line, scratch_dir, stop, wait_idle
from sio_load import (
    PER_USER,
    add_common_options,
    close_all,
    connect_all,
    generators_for,
    run_bench,
    sign_up,
    start_app_ready,
    start_bare_ready,
    start_generators,
)


async def connect_round(name: str, proc, port: int, gens, tokens: list[str], concurrency: int) -> dict:
    await wait_idle(proc.pid)
    meter = CpuMeter(proc.pid)
    done = await connect_all(gens, name, port, tokens, concurrency=concurrency)
    cpu = meter.used()[0]
    await close_all(gens, name)
    return {"ok": done["ok"], "failed": done["failed"], "errors": done["errors"], "seconds": done["seconds"],
            "cpu_s": cpu, "us_per_connect": cpu / max(1, done["ok"]) * 1e6}


async def storm(name: str, start, gens, tokens: list[str], concurrency: int) -> dict:
    """Connect `tokens`, restart the server, reconnect them all at once."""
    proc, log, port = start()
    held = 0
    try:
        held = (await connect_all(gens, name, port, tokens, concurrency=concurrency))["ok"]
    finally:
        stopped_in = stop(proc, timeout=60, name=name, log=log, warn_after=15)
    await close_all(gens, name)
    proc, log, port = start()
    try:
        done = await connect_all(gens, name, port, tokens, concurrency=len(tokens), timeout=60)
        await close_all(gens, name)
    finally:
        stop(proc, timeout=60, name=name, log=log, warn_after=15)
    return {"ok": done["ok"], "failed": done["failed"], "errors": done["errors"], "seconds": done["seconds"],
            "held_at_stop": held, "stop_s": stopped_in}


async def run(args: argparse.Namespace) -> dict:
    results: dict = {"load_average_start": load_average()}
    settings = {"REDIS_URL": args.redis_url, "NAMELESS_MONGO_DB": f"bench_{uuid.uuid4().hex[:10]}"}
    with scratch_dir() as tmp:
        app_port, bare_port = free_port(), free_port()
        data = tmp / "app-data"

        def start_the_app():
            return *start_app_ready(app_port, tmp, data_dir=data, **settings), app_port

        def start_bare():
            return *start_bare_ready(__file__, bare_port, tmp), bare_port

        count = max(args.clients, args.storm)
        gens = await start_generators(generators_for(count))
        try:
            app, app_log, _ = start_the_app()
            bare, bare_log, _ = start_bare()
            try:
                tokens, signup = await sign_up(app_port, -(-count // PER_USER), args.signup_concurrency)
                results["signup"] = signup
                per_socket = [t for t in tokens for _ in range(PER_USER)]
                sockets = per_socket[:args.clients]
                for name, proc, port in (("bare", bare, bare_port), ("app", app, app_port)):
                    results[name] = {"cold": await connect_round(name, proc, port, gens, sockets, args.concurrency),
                                     "warm": await connect_round(name, proc, port, gens, sockets, args.concurrency)}
                    print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
            finally:
                stop(app, timeout=60, name="run.py", log=app_log, warn_after=15)
                stop(bare, timeout=60, name="bare server", log=bare_log, warn_after=15)
            if args.storm:
                storming = per_socket[:args.storm]
                results["storm"] = {"bare": await storm("bare", start_bare, gens, storming, args.concurrency),
                                    "app": await storm("app", start_the_app, gens, storming, args.concurrency)}
                print(f"storm: {json.dumps(results['storm'])}", file=sys.stderr)
        finally:
            for g in gens:
                await g.stop()
    results["load_average_end"] = load_average()
    return results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=2000, help="sockets per connect round (default 2000)")
    p.add_argument("--storm", type=int, default=5000, help="sockets in the reconnect storm (default 5000; 0: none)")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    return add_common_options(p)


def main() -> int:
    args = _parser().parse_args()
    results = run_bench(args, run)
    if results is None:
        return 0
    if args.json:
        print(json.dumps({"clients": args.clients, "storm_size": args.storm, **results}))
        return 0
    app_r, bare_r = results["app"], results["bare"]
    print(f"Socket.IO connect: {args.clients} sockets per round, {os.cpu_count()} CPUs, load average"
          f" {results['load_average_start']} at start, {results['load_average_end']} at end")
    print(f"{'':16}{'connected':>10}{'failed':>8}{'seconds':>9}{'CPU s':>8}{'us/connect':>12}")
    for name, r in (("bare cold", bare_r["cold"]), ("bare again", bare_r["warm"]),
                    ("app cold", app_r["cold"]), ("app cached", app_r["warm"])):
        print(f"{name:16}{r['ok']:>10}{r['failed']:>8}{r['seconds']:>9.1f}{r['cpu_s']:>8.2f}{r['us_per_connect']:>12.0f}")
    print(ratio_line("app/bare", {"CPU per cold connect": app_r["cold"]["us_per_connect"]
                                  / bare_r["cold"]["us_per_connect"],
                                  "CPU per cached reconnect": app_r["warm"]["us_per_connect"]
                                  / bare_r["warm"]["us_per_connect"]}))
    if "storm" in results:
        for name in ("bare", "app"):
            s = results["storm"][name]
            print(f"reconnect storm of {args.storm} after a restart, {name}: {s['ok']} back, {s['failed']} failed,"
                  f" {s['seconds']:.1f} s{' ' + json.dumps(s['errors']) if s['errors'] else ''};"
                  f" its SIGTERM holding {s['held_at_stop']} sockets took {s['stop_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
