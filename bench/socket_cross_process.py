"""Cross-process delivery: latency from a staff notice emitted on one app process to a
client connected to another process (through Redis), against the same emit delivered to
a client of the emitting process, same run, same notices.

    .venv/bin/python bench/socket_cross_process.py [--notices 400] [--interval 0.05] [--sockets 1]

Starts an embedded nx-27017 (storage.embedded_mongo.EmbeddedMongo) in a temporary dir and
two `run.py` processes, A and B, on that one MONGO_URL and one REDIS_URL (default
redis://127.0.0.1:6379; a temporary `redis-server` is started if none answers and one is
installed), with one database name and one secret key, as two processes of one deployment
are. Creates a super admin with `run.py createsuperuser`, signs up one user through A and
connects `--sockets` Socket.IO clients of that user to A and as many to B (from one
generator process, `sio_load.py`, raw websocket clients authenticated on "/").

Each notice is `POST /api/v1/admin/users/{id}/notifications` sent to A (inbox write,
then `Gateway.emit_to_user` -> python-socketio's Redis manager: deliver to A's local
sockets of room user:{id}, publish on Redis; B's listener delivers to its own). So every
notice yields one same-process delivery (the client on A: the baseline) and one
cross-process delivery (the client on B), from the same emit. Latency =
the client's `time.time()` when the bytes were read - the driver's `time.time()` just
before it sent the POST. Notices are sent one at a time, each after the previous one was
delivered to both sides, `--interval` seconds apart. Prints p50/p99/max of both, the
paired extra time B - A per notice, and the ratios B/A.

Settings: shipped defaults except NAMELESS_RATE_LIMIT_AUTH, _IP and _USER, raised because
every request comes from 127.0.0.1 and the notices come from one staff account (600 per
minute per user by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from harness import (
    NAN,
    ROOT,
    CpuMeter,
    clean_env,
    create_superuser,
    free_port,
    load_average,
    percentile,
    raise_nofile,
    ratio_line,
    scratch_dir,
    start_app,
    stop,
    wait_until_answers,
)
from sio_load import close_all, connect_all, start_generators

sys.path.insert(0, str(ROOT))

from storage.embedded_mongo import EmbeddedMongo

ADMIN_EMAIL = "bench-root@example.com"
DEFAULT_REDIS = "redis://127.0.0.1:6379"


def redis_answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def start_redis(tmp: Path) -> tuple[subprocess.Popen | None, str]:
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS
    if redis_answers(url):
        return None, url
    server = shutil.which("redis-server")
    if os.environ.get("REDIS_URL") or server is None:
        sys.exit(f"no Redis answers at {url} (set REDIS_URL, or install redis-server)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not redis_answers(url):
        time.sleep(0.1)
    return proc, url


async def measure(args: argparse.Namespace, tmp: Path, ports: dict[str, int], procs: dict[str, Any],
                  shared: dict[str, str]) -> dict[str, Any]:
    password = f"bench admin {secrets.token_urlsafe(12)}"
    await asyncio.to_thread(create_superuser, clean_env(**shared, NAMELESS_DATA_DIR=str(tmp / "a")), tmp, ADMIN_EMAIL,
                            password, 120)
    gens = await start_generators(1)
    gen = gens[0]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['a']}", timeout=30) as api:
            root = (await api.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": password})).json()
            admin = {"Authorization": f"Bearer {root['access_token']}"}
            signed = await api.post("/api/v1/auth/signup", json={
                "email": f"bench-{secrets.token_hex(4)}@example.com", "display_name": "Bench",
                "password": f"bench {secrets.token_urlsafe(12)} cross"})
            signed.raise_for_status()
            user_id, token = signed.json()["user"]["id"], signed.json()["access_token"]
            connects = {}
            for side in ("a", "b"):
                connects[side] = await connect_all(gens, side, ports[side], [token] * args.sockets)
                if connects[side]["ok"] != args.sockets:
                    sys.exit(f"could not connect to {side.upper()}: {json.dumps(connects[side])}")
            await asyncio.sleep(0.5)

            samples: list[dict[str, Any]] = []
            missing = 0
            sides = list(procs)
            meter = CpuMeter(*(procs[side].pid for side in sides), gen.proc.pid)
            for k in range(args.warmup + args.notices):  # bounded: one notice at a time, each waited for
                t0 = time.time()
                resp = await api.post(f"/api/v1/admin/users/{user_id}/notifications",
                                      json={"title": f"bench {k}", "body": f"Cross-process notice {k}."},
                                      headers=admin)
                t_resp = time.time()
                if resp.status_code != 201:
                    sys.exit(f"notice {k} answered {resp.status_code}: {resp.text[:300]}")
                arrivals: dict[str, list[float]] = {}
                for side in ("a", "b"):
                    await gen.ask(args.timeout + 30, cmd="wait", group=side, count=args.sockets, timeout=args.timeout)
                    taken = await gen.ask(60, cmd="take", group=side)
                    arrivals[side] = sorted(at - t0 for at, event, data in taken["events"]
                                            if event == "notification" and data.get("title") == f"bench {k}")
                if k >= args.warmup:
                    if len(arrivals["a"]) < args.sockets or len(arrivals["b"]) < args.sockets:
                        missing += 1
                    if arrivals["a"] and arrivals["b"]:
                        samples.append({"a": arrivals["a"], "b": arrivals["b"], "http": t_resp - t0})
                await asyncio.sleep(args.interval)
            elapsed = meter.elapsed()
            *side_shares, gen_cpu = meter.shares(elapsed)[0]
            cpu = dict(zip(sides, side_shares, strict=True))
            for side in ("a", "b"):
                await close_all(gens, side)
    finally:
        await gen.stop()

    def stats(values: list[float]) -> dict[str, float]:
        values = sorted(values)
        return {"p50_ms": percentile(values, 50) * 1000, "p99_ms": percentile(values, 99) * 1000,
                "max_ms": values[-1] * 1000 if values else NAN, "n": len(values)}

    return {
        "same_process": stats([x for s in samples for x in s["a"]]),
        "cross_process": stats([x for s in samples for x in s["b"]]),
        "extra_hop": stats([s["b"][0] - s["a"][0] for s in samples]),
        "http_response": stats([s["http"] for s in samples]),
        "notices": args.notices, "missing": missing, "seconds": elapsed,
        "cpu_share": {"A": cpu["a"], "B": cpu["b"], "generator": gen_cpu},
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = load_average()
    with scratch_dir() as tmp:
        redis_proc, redis_url = start_redis(tmp)
        mongo = EmbeddedMongo(tmp / "mongo")
        procs: dict[str, Any] = {}
        logs: dict[str, Path] = {}
        try:
            mongo_url = await asyncio.to_thread(mongo.start)
            shared = {"MONGO_URL": mongo_url, "REDIS_URL": redis_url,
                      "NAMELESS_MONGO_DB": f"bench_{secrets.token_hex(5)}",
                      "NAMELESS_SECRET_KEY": secrets.token_urlsafe(36),
                      "NAMELESS_RATE_LIMIT_AUTH": str(10**9), "NAMELESS_RATE_LIMIT_IP": str(10**9),
                      "NAMELESS_RATE_LIMIT_USER": str(10**9)}
            ports = {"a": free_port(), "b": free_port()}

            for side in ("a", "b"):
                procs[side], logs[side] = start_app(ports[side], tmp, side, **shared)
            for side in ("a", "b"):
                wait_until_answers(procs[side], ports[side], "/readyz", f"run.py {side.upper()}", logs[side])
            result = await measure(args, tmp, ports, procs, shared)
            result["redis"] = "temporary redis-server" if redis_proc else redis_url.split("@")[-1]
            result["load_average"] = f"{load_start}-{load_average()}"
            return result
        finally:
            for side in list(procs):
                stop(procs[side], timeout=60, name=f"run.py {side.upper()}", log=logs.get(side), warn_after=15)
            await asyncio.to_thread(mongo.stop)
            if redis_proc is not None:
                stop(redis_proc, timeout=60, warn_after=15)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--notices", type=int, default=400, help="measured notices (default 400)")
    p.add_argument("--warmup", type=int, default=10, help="notices sent first and not counted (default 10)")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between notices (default 0.05)")
    p.add_argument("--sockets", type=int, default=1, help="sockets of the user on each process (1-10, default 1)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for one notice's deliveries")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return p


def main() -> int:
    args = _parser().parse_args()
    if not 1 <= args.sockets <= 10:
        sys.exit("--sockets must be 1-10 (the app's cap per user and process)")
    raise_nofile()
    r = asyncio.run(run(args))
    same, cross, hop = r["same_process"], r["cross_process"], r["extra_hop"]
    ratios = {"p50": cross["p50_ms"] / same["p50_ms"], "p99": cross["p99_ms"] / same["p99_ms"]}
    if args.json:
        print(json.dumps({**vars(args), **r, "ratio_cross_over_same": ratios}))
    else:
        print(f"Staff notice emitted on A: {args.notices} notices (+{args.warmup} warm-up), one at a time,"
              f" {args.interval:g} s apart, {args.sockets} socket(s) per process, Redis {r['redis']},"
              f" {os.cpu_count()} CPUs, load average {r['load_average']}")
        print(f"{'':28}{'deliveries':>11}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for label, s in (("client on A (same process)", same), ("client on B (via Redis)", cross),
                         ("extra time B - A (paired)", hop), ("POST answered (driver)", r["http_response"])):
            print(f"{label:28}{s['n']:>11}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}{s['max_ms']:>9.2f}")
        c = r["cpu_share"]
        print(f"(latency: driver's time.time() before the POST -> the client read the notification;"
              f" CPU over the run: A {c['A']:.0%}, B {c['B']:.0%}, generator {c['generator']:.0%} of one core)")
        print(ratio_line("cross/same process", ratios))
    if r["missing"]:
        print(f"warning: {r['missing']} notices were not delivered to every socket", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
