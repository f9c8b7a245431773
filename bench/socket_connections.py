"""How many authenticated Socket.IO websocket connections one app process holds, and its
RSS per connection, against a bare python-socketio server on Tornado, same run, same load.

    .venv/bin/python bench/socket_connections.py [--clients 2000] [--hold 30] [--deflate]

Starts `run.py` (embedded defaults, a temporary data dir, a free loopback port) and a bare
python-socketio `AsyncServer(async_mode="tornado")` that accepts every connection, each
as its own subprocess. Signs up clients/10 users on the app through
`POST /api/v1/auth/signup` (10 sockets per user is the app's cap), then opens the same
number of websocket Socket.IO connections to each server in turn from generator
processes (`sio_load.py`, raw websocket clients, 2,500 sockets per process), each
authenticated with `auth={"token": ...}` on namespace "/". Reads the server's VmRSS
before the first socket and after all are connected and held `--hold` seconds (longer
than the 25 s ping interval by default, so every socket has answered a ping), and prints
KB per connection of both and the ratio app/bare.

The app keeps its shipped defaults except two rate limits, raised so that the sign-ups (all
from 127.0.0.1) are not answered 429: NAMELESS_RATE_LIMIT_AUTH (sign-ups per IP per
minute) and NAMELESS_RATE_LIMIT_IP (requests per IP per minute).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time

from harness import (
    CpuMeter,
    cpu_seconds,
    free_port,
    load_average,
    log_lines,
    open_files_limit,
    ratio_line,
    rss_kb,
    scratch_dir,
    stop,
    wait_idle,
)
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
    status_all,
)

# --- one measurement ----------------------------------------------------------------------------


async def measure(name: str, proc, port: int, gens, tokens: list[str], args: argparse.Namespace) -> dict:
    await asyncio.sleep(args.settle)
    before = rss_kb(proc.pid)
    meter = CpuMeter(proc.pid, *(g.proc.pid for g in gens))
    connected = await connect_all(gens, name, port, tokens, concurrency=args.concurrency, deflate=args.deflate)
    connect_cpu, *gen_used = meter.used()
    gen_cpu = sum(gen_used)
    at_connect = rss_kb(proc.pid)
    peak = at_connect
    hold_cpu0, hold_started = cpu_seconds(proc.pid), time.monotonic()
    deadline = hold_started + args.hold
    while time.monotonic() < deadline:  # bounded by --hold
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        peak = max(peak, rss_kb(proc.pid))
    after = rss_kb(proc.pid)
    hold_share = (cpu_seconds(proc.pid) - hold_cpu0) / max(1e-9, time.monotonic() - hold_started)
    state = await status_all(gens, name)
    live = state["live"]
    await close_all(gens, name)
    disconnect_cpu, disconnect_s = await wait_idle(proc.pid)
    return {
        "requested": len(tokens), "connected": connected["ok"], "failed": connected["failed"],
        "errors": connected["errors"], "connect_s": connected["seconds"],
        "connect_rate": connected["ok"] / connected["seconds"] if connected["seconds"] else 0.0,
        "live_after_hold": live, "dropped_during_hold": state["closed"], "pings_answered": state["pings"],
        "rss_before_kb": before, "rss_connected_kb": at_connect, "rss_after_kb": after, "rss_peak_kb": peak,
        "kb_per_conn": (after - before) / live if live else float("nan"),
        "server_cpu_connect_s": connect_cpu, "generator_cpu_connect_s": gen_cpu,
        "server_cpu_disconnect_s": disconnect_cpu, "disconnect_busy_s": disconnect_s,
        "server_cpu_share_holding": hold_share,
    }


async def run(args: argparse.Namespace) -> dict:
    users = -(-args.clients // PER_USER)
    results: dict = {"load_average_start": load_average()}
    with scratch_dir() as tmp:
        app_port, bare_port = free_port(), free_port()
        app = bare = None
        gens = []
        try:
            app, app_log = start_app_ready(app_port, tmp)
            bare, _ = start_bare_ready(__file__, bare_port, tmp)
            results["open_files"] = {"app": open_files_limit(app.pid), "bare": open_files_limit(bare.pid),
                                     "app_log": log_lines(app_log, "open files limit")}
            tokens, signup = await sign_up(app_port, users, args.signup_concurrency)
            results["signup"] = signup
            print(f"signed up {signup['users']} users in {signup['seconds']:.1f} s"
                  f"{' (failures: ' + json.dumps(signup['failures']) + ')' if signup['failures'] else ''}",
                  file=sys.stderr)
            per_socket = [t for t in tokens for _ in range(PER_USER)][:args.clients]
            gens = await start_generators(generators_for(args.clients))
            gc.collect()
            for name, proc, port in (("app", app, app_port), ("bare", bare, bare_port)):
                results[name] = await measure(name, proc, port, gens, per_socket, args)
                r = results[name]
                print(f"{name}: {r['connected']}/{r['requested']} connected in {r['connect_s']:.1f} s,"
                      f" {r['kb_per_conn']:.1f} KB each", file=sys.stderr)
        finally:
            for g in gens:
                await g.stop()
            stop(app, timeout=60, name="run.py", log=tmp / "app.log", warn_after=15)
            stop(bare, timeout=60, name="bare server", log=tmp / "bare.log", warn_after=15)
    results["generators"] = len(gens)
    results["load_average_end"] = load_average()
    return results


# --- main ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=2000, help="sockets per server (default 2000; target 10000)")
    p.add_argument("--hold", type=float, default=30.0,
                   help="seconds to hold them all before the last RSS reading (default 30: one ping interval)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds of quiet before the first RSS reading")
    p.add_argument("--deflate", action="store_true",
                   help="offer permessage-deflate in the upgrade, as browsers do")
    return add_common_options(p)


def main() -> int:
    args = _parser().parse_args()
    results = run_bench(args, run)
    if results is None:
        return 0
    app_r, bare_r = results["app"], results["bare"]
    ratio = app_r["kb_per_conn"] / bare_r["kb_per_conn"]
    if args.json:
        print(json.dumps({"clients": args.clients, "hold": args.hold, "deflate": args.deflate, **results,
                          "ratio_app_over_bare_kb_per_conn": ratio}))
    else:
        print(f"Socket.IO websocket connections: {args.clients} per server, held {args.hold:g} s,"
              f" {results['generators']} generator processes, deflate {'offered' if args.deflate else 'off'},"
              f" {os.cpu_count()} CPUs, load average {results['load_average_start']} at start,"
              f" {results['load_average_end']} at end")
        limits = results["open_files"]
        print(f"open files (soft/hard) of the servers: app {limits['app'][0]}/{limits['app'][1]}, bare"
              f" {limits['bare'][0]}/{limits['bare'][1]}; run.py logged:"
              f" {' | '.join(limits['app_log']) or 'nothing about it'}")
        print(f"{'':14}{'connected':>10}{'failed':>8}{'live':>7}{'conn/s':>8}{'RSS before':>12}"
              f"{'RSS after':>11}{'KB/conn':>9}{'srv CPU s':>10}{'gen CPU s':>10}{'hold CPU':>9}{'close CPU s':>12}")
        for name, r in (("bare socketio", bare_r), ("nameless app", app_r)):
            print(f"{name:14}{r['connected']:>10}{r['failed']:>8}{r['live_after_hold']:>7}{r['connect_rate']:>8.0f}"
                  f"{r['rss_before_kb'] / 1024:>10.1f}MB{r['rss_after_kb'] / 1024:>9.1f}MB{r['kb_per_conn']:>9.1f}"
                  f"{r['server_cpu_connect_s']:>10.1f}{r['generator_cpu_connect_s']:>10.1f}"
                  f"{r['server_cpu_share_holding']:>9.0%}{r['server_cpu_disconnect_s']:>12.1f}")
            if r["errors"]:
                print(f"  connect errors: {json.dumps(r['errors'])}")
        print("(KB/conn: (RSS after hold - RSS before) / sockets live after the hold; srv/gen CPU s: CPU seconds"
              " the server and the generators used while connecting; hold CPU: share of one core the server used"
              " while merely holding the idle sockets (Engine.IO pings); close CPU s: CPU seconds the server used"
              " after the clients closed every socket at once, until it was idle again)")
        print(ratio_line("app/bare", {"KB per connection": ratio}))
    bad = any(r["failed"] or r["live_after_hold"] < r["connected"] for r in (app_r, bare_r))
    if bad:
        print("warning: some sockets failed to connect or dropped during the hold", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
