"""Catalog endpoints under load, on a big embedded store, as ratios to /healthz.

    .venv/bin/python bench/catalog.py [--titles 10000] [--episodes 100000] [--history 1000000]
                                      [--duration 10] [--connections 50] [--generator auto|wrk|python] [--json]

Starts an nx-27017 server (the embedded default) and bulk-loads it with documents of
exactly the shape the services write (server.catalog.admin.new_title_document, the
repositories' history and watchlist shapes): titles with genres, people and search keys,
series with seasons and episodes, and history rows spread over many profiles, plus one
signed-up viewer with a history of their own. Then it starts `run.py` on that database
(shipped defaults except the rate limits, raised because all load comes from one address
and one user) and drives each endpoint with `wrk` when installed, else the harness's Python
generator in a process of its own (50 keep-alive connections, the viewer's bearer token):
GET /healthz, GET /home, GET /titles with filters, GET /titles with a search, page 5 of
the viewer's history. The app is restarted on the loaded store first, to time start-up
until /readyz answers (the catalog read model built), and the read model's own size is
measured in this process with tracemalloc. Prints req/s, p50 and p99 per endpoint and the
ratio of each to /healthz. With --explain it also prints the query plan nx-27017 reports
for each viewer query.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    NAN,
    ROOT,
    CpuMeter,
    Result,
    free_port,
    load_average,
    parse_wrk_latency,
    pick_generator,
    rss_kb,
    run_command,
    run_python_generator,
    scratch_dir,
    start_app,
    stop,
    wait_until_answers,
    wrk_command,
    wrk_seconds,
)

sys.path.insert(0, str(ROOT))

import httpx
from pymongo import MongoClient

from server.catalog.admin import new_title_document
from server.core.clock import now, to_ms
from server.core.ids import new_id
from storage.catalog.episodes import order_key
from storage.catalog.titles import search_query, visible_query

WORDS = ("shadow night river crown glass winter echo iron silver storm garden north harbour empire "
         "signal orbit paper fire stone velvet hollow ember tide falcon quiet atlas lantern cipher "
         "meridian canyon").split()
FIRST = "Ada Kai Lea Omar Sofia Ines Jonas Mara Theo Nia Yusuf Elena Bram Hana Tomas Zoe".split()
LAST = "Okafor Solberg Ruiz Nakamura Fontaine Berg Marsh Quist Herrera Sato Lindqvist Aydin Roux".split()
GENRES = [f"genre-{n}" for n in range(20)]
BATCH = 5000
BENCH_PASSWORD = "correct horse battery"  # noqa: S105 - a throwaway account in a throwaway store


def _title_fields(rng: random.Random, n: int, kind: str) -> dict[str, Any]:
    name = " ".join(rng.sample(WORDS, rng.randint(1, 3))).title() + f" {n}"
    people = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(rng.randint(3, 6))]
    return {
        "type": kind, "title": name, "year": rng.randint(1950, 2025), "synopsis": f"Synopsis of {name}.",
        "genres": rng.sample(GENRES, rng.choice([1, 2, 2, 3])),
        "maturity_rating": rng.choice(["all", "7+", "13+", "16+", "18+"]),
        "languages": ["en"], "cast": [{"name": p, "character": None} for p in people[1:]],
        "crew": [{"name": people[0], "job": "Director"}],
        "artwork": {"poster": f"https://img.example.com/{n}.jpg"},
        "runtime_s": rng.randint(80, 140) * 60 if kind == "movie" else None,
    }


def bulk_load(db: Any, args: argparse.Namespace, viewer: dict[str, str]) -> dict[str, float]:
    rng = random.Random(42)
    at = now()
    now_ms = to_ms(at)
    timings: dict[str, float] = {}
    started = time.monotonic()
    db.categories.insert_many([{"_id": new_id(), "slug": g, "name": g.replace("-", " ").title(), "kind": "genre",
                                "position": i, "created_at": at, "updated_ms": now_ms}
                               for i, g in enumerate(GENRES)])
    series_ids: list[str] = []
    title_ids: list[str] = []
    batch: list[dict[str, Any]] = []
    for n in range(args.titles):
        kind = "series" if n % 10 < 3 else "movie"
        doc = new_title_document(_title_fields(rng, n, kind), None, at)
        doc.update(_id=new_id(), status="published", published_ms=now_ms - rng.randint(0, 400) * 86_400_000,
                   first_published_ms=now_ms, popularity=int(10_000 / (1 + rng.random() * 200)),
                   trending_score=rng.randint(0, 500), rating_count=(c := rng.randint(0, 50)),
                   rating_sum=(r := c * rng.randint(1, 5)), rating_avg=round(r / c, 4) if c else 0.0)
        title_ids.append(doc["_id"])
        if kind == "series":
            series_ids.append(doc["_id"])
        batch.append(doc)
        if len(batch) >= BATCH:
            db.titles.insert_many(batch, ordered=False)
            batch = []
    if batch:
        db.titles.insert_many(batch, ordered=False)
    timings["titles_s"] = time.monotonic() - started

    started = time.monotonic()
    per_series = max(1, args.episodes // max(1, len(series_ids)))
    seasons, episodes = [], []
    episode_ids: dict[str, list[str]] = {}
    for sid in series_ids:
        count_seasons = max(1, min(10, per_series // 10))
        for season in range(1, count_seasons + 1):
            seasons.append({"_id": new_id(), "title_id": sid, "number": season, "name": f"Season {season}",
                            "synopsis": "", "created_at": at, "updated_ms": now_ms})
        for k in range(per_series):
            season, number = 1 + k % count_seasons, 1 + k // count_seasons
            eid = new_id()
            episode_ids.setdefault(sid, []).append(eid)
            episodes.append({"_id": eid, "title_id": sid, "season_number": season, "number": number,
                             "order_key": order_key(season, number), "name": f"Episode {number}", "synopsis": "",
                             "runtime_s": 2700, "artwork": {}, "status": "published", "publish_at_ms": None,
                             "published_ms": now_ms, "created_at": at, "updated_ms": now_ms})
            if len(episodes) >= BATCH:
                db.episodes.insert_many(episodes, ordered=False)
                episodes = []
    if episodes:
        db.episodes.insert_many(episodes, ordered=False)
    db.seasons.insert_many(seasons, ordered=False)
    timings["episodes_s"] = time.monotonic() - started

    started = time.monotonic()
    per_profile = 20
    rows, progress = [], []

    def flush(force: bool = False) -> None:
        nonlocal rows, progress
        if rows and (force or len(rows) >= BATCH):
            db.history.insert_many(rows, ordered=False)
            rows = []
        if progress and (force or len(progress) >= BATCH):
            db.title_progress.insert_many(progress, ordered=False)
            progress = []

    profiles = [(viewer["user_id"], viewer["profile_id"])]
    profiles += [(new_id(), new_id()) for _ in range(max(1, args.history // per_profile))]
    written = 0
    for user_id, profile_id in profiles:
        for tid in dict.fromkeys(rng.choice(title_ids) for _ in range(per_profile)):
            if written >= args.history:
                break
            eps = episode_ids.get(tid)
            content = rng.choice(eps) if eps else tid
            position = float(rng.randint(60, 2700))
            completed = rng.random() < 0.4
            last = now_ms - rng.randint(0, 90) * 86_400_000
            place = {"user_id": user_id, "profile_id": profile_id, "title_id": tid, "content_id": content,
                     "episode_id": content if eps else None, "season_number": 1 if eps else None,
                     "episode_number": 1 if eps else None, "position_s": position, "duration_s": 2700.0,
                     "completed": completed, "last_watched_ms": last}
            rows.append({"_id": f"{profile_id}:{content}", **place, "created_at": at, "first_watched_ms": last,
                         **({"finished_ms": last} if completed else {})})
            progress.append({"_id": f"{profile_id}:{tid}", **place, "state": "finished" if completed else "watching",
                             "next_episode_id": None, "created_at": at, "first_watched_ms": last})
            written += 1
            flush()
        if written >= args.history:
            break
    flush(force=True)
    timings["history_s"] = time.monotonic() - started
    timings["history_rows"] = written
    timings["history_profiles"] = len({p for _, p in profiles[: written // per_profile + 1]})
    return timings


def explain_viewer_queries(db: Any) -> list[tuple[str, str]]:
    """The plan nx-27017 reports for each viewer query shape (SQLite's words)."""
    now_ms = to_ms(now())
    visible = visible_query(now_ms, 4)
    title = db.titles.find_one({}, {"_id": 1})["_id"]
    profile = db.history.find_one({}, {"profile_id": 1})["profile_id"]
    shapes = {
        "browse popular": (db.titles, visible, [("popularity", -1), ("_id", -1)]),
        "browse by genre": (db.titles, {**visible, "genres": {"$all": ["genre-3"]}}, [("published_ms", -1)]),
        "search": (db.titles, {**visible, **search_query(["sha"])}, [("popularity", -1)]),
        "title by id": (db.titles, {"_id": title, **visible}, None),
        "episodes": (db.episodes, {"title_id": title, "status": "published"}, [("order_key", 1)]),
        "history page": (db.history, {"profile_id": profile}, [("last_watched_ms", -1)]),
        "continue watching": (db.title_progress, {"profile_id": profile, "state": {"$in": ["watching", "up_next"]}},
                              [("last_watched_ms", -1)]),
        "reviews": (db.reviews, {"title_id": title, "status": "visible"}, [("created_at", -1)]),
        "watchlist": (db.watchlist, {"profile_id": profile}, [("added_ms", -1)]),
    }
    plans = []
    for name, (coll, query, sort) in shapes.items():
        cursor = coll.find(query)
        if sort:
            cursor = cursor.sort(sort)
        plan = cursor.explain().get("queryPlanner", {}).get("winningPlan", [])
        plans.append((name, "; ".join(p.get("detail", str(p)) for p in plan) if isinstance(plan, list) else str(plan)))
    return plans


def wait_for_log(log: Path, text: str, timeout: float = 600.0) -> float:
    """When `text` first appears in the app's log (monotonic), waiting for it."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if text in log.read_text(errors="replace"):
            return time.monotonic()
        time.sleep(0.5)
    sys.exit(f"the app did not log {text!r} within {timeout:.0f} s")


def wait_idle(port: int, timeout: float = 300.0) -> float:
    """Wait until the app has finished the requests the last run left behind (Tornado keeps
    serving a request whose client went away), so runs do not measure each other's queue.
    Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        found = re.search(r"^nameless_http_requests_in_flight (\S+)$", text, re.MULTILINE)
        if found is None or float(found.group(1)) <= 1.0:  # the scrape itself
            return time.monotonic() - started
        time.sleep(0.5)
    sys.exit("the app did not drain its in-flight requests")


def run_load(port: int, path: str, token: str | None, args: argparse.Namespace, duration: float,
             tmp: Path) -> Result:
    if args.generator == "wrk":
        return run_wrk(port, path, token, args, duration)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    figures = run_python_generator(port, [path], args.connections, duration, tmp, headers=headers)
    return Result(rps=figures["rps"], p50_ms=figures["p50_ms"], p99_ms=figures["p99_ms"],
                  requests=figures["requests"], non2xx=figures["non2xx"], errors=figures["errors"])


def model_size(url: str) -> dict[str, float]:
    """The read model built here from the loaded store: bytes it holds per title (tracemalloc)."""
    import asyncio
    import tracemalloc

    from pymongo import AsyncMongoClient

    from server.catalog.read_model import CatalogReadModel
    from storage.catalog.titles import TitleRepository
    from storage.state.pubsub import MemoryPubSub

    async def build() -> dict[str, float]:
        client = AsyncMongoClient(url, tz_aware=True)
        model = CatalogReadModel(TitleRepository(client["bench"]), MemoryPubSub())
        tracemalloc.start()
        await model.rebuild()
        for field in ("popularity", "published_ms", "rating_avg", "trending_score"):
            model._index.order(field)  # the sort orders are part of what it holds
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        await client.close()
        return {"model_bytes": float(held), "model_bytes_per_title": held / max(1, model.size)}

    return asyncio.run(build())


def history_page5(base: str, token: str) -> str:
    """The path of page 5 (20 rows a page) of the viewer's history."""
    cursor = None
    for _ in range(4):
        body = httpx.get(f"{base}/me/history", params={"limit": 20, **({"cursor": cursor} if cursor else {})},
                         headers={"Authorization": f"Bearer {token}"}, timeout=120).json()
        cursor = body.get("next_cursor")
        if not cursor:
            return "/api/v1/me/history?limit=20"
    return f"/api/v1/me/history?limit=20&cursor={cursor}"


def run_wrk(port: int, path: str, token: str | None, args: argparse.Namespace, duration: float) -> Result:
    options = ["--latency", "--timeout", "60s", *(["-H", f"Authorization: Bearer {token}"] if token else [])]
    cmd = [*wrk_command(args.threads, args.connections, duration, *options), f"http://127.0.0.1:{port}{path}"]
    out = run_command(cmd, wrk_seconds(duration) + 60)
    if os.environ.get("BENCH_DEBUG"):
        print(out, file=sys.stderr)
    figures = parse_wrk_latency(out)
    if figures is None or figures["requests"] == 0:
        print(out, file=sys.stderr)
        return Result(rps=0.0, p50_ms=NAN, p99_ms=NAN, requests=0, non2xx=0, errors=1)
    return Result(**figures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--titles", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep the loaded store here and reuse it on the next run")
    parser.add_argument("--only", help="comma-separated substrings: run only the matching endpoints")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    args.generator = pick_generator(args.generator)
    loadavg_before = load_average()
    from storage.embedded_mongo import EmbeddedMongo

    with scratch_dir("nameless-catalog-bench-") as scratch:
        tmp = args.workdir or scratch
        tmp.mkdir(parents=True, exist_ok=True)
        state_file = tmp / "loaded.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else None
        mongo = EmbeddedMongo(tmp / "mongo")
        url = mongo.start()
        port = free_port()
        app, log = start_app(port, tmp, data_dir=tmp / "data", NAMELESS_MONGO_DB="bench", MONGO_URL=url,
                             NAMELESS_RATE_LIMIT_IP=str(10**9), NAMELESS_RATE_LIMIT_USER=str(10**9))
        try:
            wait_until_answers(app, port, "/healthz", "app", log)
            base = f"http://127.0.0.1:{port}/api/v1"
            client = MongoClient(url, tz_aware=True)
            db = client["bench"]
            if state is None:
                email = f"bench-{new_id()}@example.com"
                signed = httpx.post(f"{base}/auth/signup", json={"email": email, "password": BENCH_PASSWORD,
                                                                 "display_name": "Bench"}, timeout=30).json()
                token = signed["access_token"]
                profile = httpx.get(f"{base}/me/profiles",
                                    headers={"Authorization": f"Bearer {token}"}).json()["items"][0]
                timings = bulk_load(db, args, {"user_id": signed["user"]["id"], "profile_id": profile["id"]})
                state = {"email": email, "timings": timings}
                if args.workdir:
                    state_file.write_text(json.dumps(state))
            # Restart on the loaded store: start-up until ready is a figure of its own.
            stop(app)
            started = time.monotonic()
            app, log = start_app(port, tmp, data_dir=tmp / "data", NAMELESS_MONGO_DB="bench", MONGO_URL=url,
                                 NAMELESS_RATE_LIMIT_IP=str(10**9), NAMELESS_RATE_LIMIT_USER=str(10**9))
            wait_until_answers(app, port, "/readyz", "app", log, timeout=600)
            startup = {"start_to_ready_s": time.monotonic() - started, "app_rss_mb": rss_kb(app.pid) / 1024,
                       **model_size(url)}
            # The app runs the recommendations job 30 s after start: let it finish before any
            # endpoint is measured, or it lands inside one of them.
            startup["first_recommendations_s"] = wait_for_log(log, "recommendations computed") - started
            # Sign in now: a long load outlives the signup's access token (15 minutes).
            token = httpx.post(f"{base}/auth/login", json={"email": state["email"], "password": BENCH_PASSWORD},
                               timeout=30).json()["access_token"]
            timings = state["timings"]
            if not args.json:
                print("loaded: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in timings.items()))
            if not args.json:
                print("start: " + ", ".join(f"{k} {v:.1f}" for k, v in startup.items()))
            if args.explain:
                for name, plan in explain_viewer_queries(db):
                    print(f"  plan {name:<18} {plan}")
            targets = [
                ("GET /healthz", "/healthz", None),
                ("GET /me/profiles (1 DB read)", "/api/v1/me/profiles", token),
                ("GET /home", "/api/v1/home", token),
                ("GET /titles?genre&type&sort=new", "/api/v1/titles?genre=genre-3&type=movie&sort=new", token),
                ("GET /titles?q=sha", "/api/v1/titles?q=sha", token),
                ("GET /titles?q=silver nak", "/api/v1/titles?q=silver%20nak", token),
                ("GET /me/history page 5", history_page5(base, token), token),
            ]
            if args.only:
                wanted = args.only.split(",")
                targets = [t for t in targets if t[0] == "GET /healthz" or any(w in t[0] for w in wanted)]
            results: dict[str, Result] = {}
            for name, path, auth in targets:
                wait_idle(port)
                t0 = time.monotonic()
                check = httpx.get(f"http://127.0.0.1:{port}{path}",
                                  headers={"Authorization": f"Bearer {auth}"} if auth else {}, timeout=120)
                if not args.json:
                    print(f"  one {name}: {(time.monotonic() - t0) * 1000:.0f} ms")
                if check.status_code != 200:
                    tail = log.read_text(errors="replace")[-3000:]
                    sys.exit(f"{name} answered {check.status_code}: {check.text[:300]}\n{tail}")
                run_load(port, path, auth, args, 1.0, tmp)  # warm-up, not counted
                wait_idle(port)
                meter = CpuMeter(app.pid)
                result = run_load(port, path, auth, args, args.duration, tmp)
                (result.server_cpu,), _ = meter.shares()
                results[name] = result
            client.close()
        finally:
            stop(app)
            mongo.stop()
    base_rps = results["GET /healthz"].rps
    if args.json:
        print(json.dumps({"load": timings, "startup": startup, "results": {k: vars(v) for k, v in results.items()},
                          "rps_ratio_to_healthz": {k: v.rps / base_rps for k, v in results.items()}}))
        return 0
    print(f"\n{args.titles} titles, {args.episodes} episodes, {timings['history_rows']} history rows; "
          f"{args.connections} connections, {args.duration:.0f} s each, {args.generator} ({dt.date.today()}); "
          f"load average {loadavg_before} before, {load_average()} after")
    print(f"{'endpoint':<34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non2xx':>7} {'cpu':>5} {'rps/healthz':>12}")
    for name, r in results.items():
        print(f"{name:<34} {r.rps:>8.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.non2xx + r.errors:>7} "
              f"{r.server_cpu:>5.2f} {r.rps / base_rps:>12.3f}")
    return 1 if any(r.non2xx or r.errors for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
