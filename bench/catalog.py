"""Catalog endpoints under load, on a big embedded store, as ratios to /healthz.

    .venv/bin/python bench/catalog.py [--titles 10000] [--episodes 100000] [--history 1000000] [--profiles 5000]
                                      [--duration 10] [--connections 50] [--generator auto|wrk|python] [--json]
                                      [--rebuild] [--prepare-only] [--startup-only] [--app-env NAME=VALUE]

The store is prepared once per size and kept under --cache-dir (~/.cache/nameless-bench/catalog,
one directory per size; --rebuild makes it again): `run.py` starts once on an empty embedded
store (it creates its indexes; the viewer signs up), both stop, and the documents are written
straight into nx-27017's SQLite file in one transaction per batch (StoreWriter), exactly as
nx-27017 stores them over the wire: titles of the shape the services write
(server.catalog.admin.new_title_document), series with seasons and episodes, and the history
and title-progress rows record_progress writes for `--profiles` profiles (the viewer's
included), `--history` / `--profiles` contents each. Each run copies the prepared store to a
scratch dir and starts `run.py` on it (shipped defaults except the rate limits, raised because
all load comes from one address and one user): start-up until /readyz answers (the read model
built), the app's RSS, a series' details and episode page checked against the store, and the
read model's own size (tracemalloc, built in this process). After the app's first
recommendations run it drives each endpoint with `wrk` when installed, else the harness's
Python generator in a process of its own (50 keep-alive connections, the viewer's bearer
token): GET /healthz, /me/profiles, /home, /titles with filters, two searches, page 5 of the
viewer's history; then /healthz and history page 5 on one connection alone; then a mixed
load (home, browse, both searches on 50 connections) alone, and again with history page 5
on one more connection at the same time, alternated for --mixed-rounds rounds of
--mixed-duration seconds each (the median of each figure): long enough by default that
every run includes the moment the viewer's kept activity (30 s) is read again. Prints req/s,
p50 and p99 per row and their ratios to /healthz's. With --explain it also prints the query
plan nx-27017 reports for each viewer query.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import (
    NAN,
    ROOT,
    CpuMeter,
    Result,
    free_port,
    load_average,
    median_result,
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
from server.core.clock import from_ms, now, to_ms
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


class StoreWriter:
    """Writes straight into the SQLite file nx-27017 serves, with the server stopped, as
    nx-27017 would store the same documents: a BSON round trip as on the wire (tz-naive UTC
    datetimes), nx-27017's id conversion, neosqlite's table (created by neosqlite) and its
    serializer, into its `(data, _id)` columns, under the indexes the app created. The
    difference is one transaction and one `executemany` per batch instead of a commit per
    document: over the wire that ran at about 2,000 documents a second."""

    def __init__(self, mongo_dir: Path, db_name: str) -> None:
        from nx_27017.handler import NeoSQLiteHandler

        self._handler = NeoSQLiteHandler(data_dir=str(mongo_dir), journal_mode="WAL")
        self._db = self._handler.get_database(db_name)

    def insert(self, name: str, docs: list[dict[str, Any]]) -> None:
        from bson import BSON
        from neosqlite.collection.json_helpers import neosqlite_json_dumps
        from neosqlite.sql_utils import quote_table_name

        if not docs:
            return
        if name not in self._db.list_collection_names():
            self._db[name].create()
        rows = []
        for doc in docs:
            wire = self._handler._convert_objectids(BSON.encode(doc).decode())
            rows.append((neosqlite_json_dumps(wire), str(wire["_id"])))
        sql = self._db.db
        sql.execute("BEGIN")
        try:
            insert = f"INSERT INTO {quote_table_name(name)}(data, _id) VALUES (?, ?)"  # noqa: S608 - our own names
            sql.executemany(insert, rows)
        except BaseException:
            sql.execute("ROLLBACK")
            raise
        sql.execute("COMMIT")

    def close(self) -> None:
        self._db.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._handler.close_all()


def bulk_load(insert: Callable[[str, list[dict[str, Any]]], None], args: argparse.Namespace,
              viewer: dict[str, str]) -> dict[str, float]:
    rng = random.Random(42)
    at = now()
    now_ms = to_ms(at)
    timings: dict[str, float] = {}
    started = time.monotonic()
    insert("categories", [{"_id": new_id(), "slug": g, "name": g.replace("-", " ").title(), "kind": "genre",
                           "position": i, "created_at": at, "updated_ms": now_ms} for i, g in enumerate(GENRES)])
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
            insert("titles", batch)
            batch = []
    insert("titles", batch)
    timings["titles_s"] = time.monotonic() - started

    started = time.monotonic()
    per_series = max(1, args.episodes // max(1, len(series_ids)))
    seasons: list[dict[str, Any]] = []
    episodes: list[dict[str, Any]] = []
    # Each series' episodes in play order: (id, season, number), for history and up next.
    episode_list: dict[str, list[tuple[str, int, int]]] = {}
    for sid in series_ids:
        count_seasons = max(1, min(10, per_series // 10))
        for season in range(1, count_seasons + 1):
            seasons.append({"_id": new_id(), "title_id": sid, "number": season, "name": f"Season {season}",
                            "synopsis": "", "created_at": at, "updated_ms": now_ms})
        placed = sorted((1 + k % count_seasons, 1 + k // count_seasons) for k in range(per_series))
        for season, number in placed:
            eid = new_id()
            episode_list.setdefault(sid, []).append((eid, season, number))
            episodes.append({"_id": eid, "title_id": sid, "season_number": season, "number": number,
                             "order_key": order_key(season, number), "name": f"Episode {number}", "synopsis": "",
                             "runtime_s": 2700, "artwork": {}, "status": "published", "publish_at_ms": None,
                             "published_ms": now_ms, "created_at": at, "updated_ms": now_ms})
            if len(episodes) >= BATCH:
                insert("episodes", episodes)
                episodes = []
        if len(seasons) >= BATCH:
            insert("seasons", seasons)
            seasons = []
    insert("episodes", episodes)
    insert("seasons", seasons)
    timings["episodes_s"] = time.monotonic() - started

    started = time.monotonic()
    profiles = [(viewer["user_id"], viewer["profile_id"])]
    profiles += [(new_id(), new_id()) for _ in range(max(0, args.profiles - 1))]
    per_profile = max(1, args.history // len(profiles))
    rows: list[dict[str, Any]] = []
    progress: list[dict[str, Any]] = []
    written = 0
    for user_id, profile_id in profiles:
        # What record_progress writes: one history row per content, one progress row per title
        # (the title's latest content, up next when a finished episode has a successor).
        latest: dict[str, dict[str, Any]] = {}
        seen: set[str] = set()
        while len(seen) < per_profile and written < args.history:
            tid = rng.choice(title_ids)
            eps = episode_list.get(tid)
            at_index = rng.randrange(len(eps)) if eps else -1
            content, season, number = eps[at_index] if eps else (tid, None, None)
            if content in seen:
                continue
            seen.add(content)
            completed = rng.random() < 0.4
            position = 2700.0 if completed else float(rng.randint(60, 2400))
            last = now_ms - rng.randint(0, 90 * 86_400) * 1000
            place = {"user_id": user_id, "profile_id": profile_id, "title_id": tid, "content_id": content,
                     "episode_id": content if eps else None, "season_number": season, "episode_number": number,
                     "position_s": position, "duration_s": 2700.0, "completed": completed, "last_watched_ms": last}
            rows.append({"_id": f"{profile_id}:{content}", **place, "created_at": from_ms(last),
                         "first_watched_ms": last, **({"finished_ms": last} if completed else {})})
            written += 1
            if tid not in latest or latest[tid]["last_watched_ms"] < last:
                following = eps[at_index + 1][0] if eps and completed and at_index + 1 < len(eps) else None
                state = ("up_next" if following else "finished") if completed else "watching"
                latest[tid] = {"_id": f"{profile_id}:{tid}", **place, "state": state, "next_episode_id": following,
                               "created_at": from_ms(last), "first_watched_ms": last}
        progress += latest.values()
        if len(rows) >= BATCH:
            insert("history", rows)
            rows = []
        if len(progress) >= BATCH:
            insert("title_progress", progress)
            progress = []
        if written >= args.history:
            break
    insert("history", rows)
    insert("title_progress", progress)
    timings["history_s"] = time.monotonic() - started
    timings["history_rows"] = written
    timings["history_profiles"] = min(len(profiles), -(-written // per_profile))
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


def run_load(port: int, paths: list[str], token: str | None, args: argparse.Namespace, duration: float,
             tmp: Path, connections: int) -> Result:
    if args.generator == "wrk" and len(paths) == 1:
        return run_wrk(port, paths[0], token, args, duration, connections)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    figures = run_python_generator(port, paths, connections, duration, tmp, headers=headers)
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


def run_wrk(port: int, path: str, token: str | None, args: argparse.Namespace, duration: float,
            connections: int) -> Result:
    options = ["--latency", "--timeout", "60s", *(["-H", f"Authorization: Bearer {token}"] if token else [])]
    cmd = [*wrk_command(args.threads, connections, duration, *options), f"http://127.0.0.1:{port}{path}"]
    out = run_command(cmd, wrk_seconds(duration) + 60)
    if os.environ.get("BENCH_DEBUG"):
        print(out, file=sys.stderr)
    figures = parse_wrk_latency(out)
    if figures is None or figures["requests"] == 0:
        print(out, file=sys.stderr)
        return Result(rps=0.0, p50_ms=NAN, p99_ms=NAN, requests=0, non2xx=0, errors=1)
    return Result(**figures)


APP_SETTINGS = {"NAMELESS_MONGO_DB": "bench", "NAMELESS_RATE_LIMIT_IP": str(10**9),
                "NAMELESS_RATE_LIMIT_USER": str(10**9)}
STORE_FORMAT = 2  # bump when bulk_load writes other documents: older prepared stores are not reused
SPARE = ("*.sock", "*.lock", "*.pid", "*.log", "owner.json", "*-wal", "*-shm")


def store_key(args: argparse.Namespace) -> str:
    return (f"v{STORE_FORMAT}-t{args.titles}-e{args.episodes}-h{args.history}-p{args.profiles}")


def prepare(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Build the prepared store in `root`: the app starts once on an empty store (it creates
    its indexes and signs up the viewer), then both stop and the documents are written
    straight into nx-27017's SQLite file (StoreWriter), in transactions of BATCH documents.
    The store is built beside `root` and renamed into place, so a broken build is never reused."""
    from storage.embedded_mongo import EmbeddedMongo

    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    started = time.monotonic()
    mongo = EmbeddedMongo(partial / "mongo")
    url = mongo.start()
    port = free_port()
    app, log = start_app(port, partial, data_dir=partial / "data", MONGO_URL=url, **APP_SETTINGS)
    try:
        wait_until_answers(app, port, "/readyz", "app", log, timeout=120)
        base = f"http://127.0.0.1:{port}/api/v1"
        email = f"bench-{new_id()}@example.com"
        signed = httpx.post(f"{base}/auth/signup", json={"email": email, "password": BENCH_PASSWORD,
                                                         "display_name": "Bench"}, timeout=30).json()
        profile = httpx.get(f"{base}/me/profiles", headers={"Authorization": f"Bearer {signed['access_token']}"},
                            timeout=30).json()["items"][0]
    finally:
        stop(app)
        mongo.stop()
    writer = StoreWriter(partial / "mongo", "bench")
    try:
        timings = bulk_load(writer.insert, args, {"user_id": signed["user"]["id"], "profile_id": profile["id"]})
    finally:
        writer.close()
    timings["prepare_s"] = time.monotonic() - started
    state = {"email": email, "timings": timings, "key": store_key(args)}
    (partial / "loaded.json").write_text(json.dumps(state))
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return state


def prepared_store(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The prepared store for these sizes (built first when missing or with --rebuild)."""
    root = args.cache_dir / store_key(args)
    if args.rebuild or not (root / "loaded.json").exists():
        print(f"preparing {root} ...", file=sys.stderr)
        return root, prepare(root, args)
    return root, json.loads((root / "loaded.json").read_text())


def details_check(base: str, token: str, db: Any) -> dict[str, float]:
    """One series' details and its first episode page as the app answers them, against the
    store: the figures are the two requests' times; a mismatch stops the run."""
    auth = {"Authorization": f"Bearer {token}"}
    title = db.titles.find_one({"type": {"$eq": "series"}}, {"_id": 1, "title": 1})
    t0 = time.monotonic()
    detail = httpx.get(f"{base}/titles/{title['_id']}", headers=auth, timeout=60)
    t1 = time.monotonic()
    listed = httpx.get(f"{base}/titles/{title['_id']}/episodes", params={"season": 1, "limit": 20},
                       headers=auth, timeout=60)
    t2 = time.monotonic()
    stored = [e["_id"] for e in db.episodes.find({"title_id": title["_id"], "season_number": 1})
              .sort("order_key", 1).limit(20)]
    seasons = sorted(s["number"] for s in db.seasons.find({"title_id": title["_id"]}))
    body = detail.json() if detail.status_code == 200 else {}
    got_seasons = sorted(s["number"] for s in body.get("seasons", []))
    got_episodes = [e["id"] for e in listed.json().get("items", [])] if listed.status_code == 200 else []
    if body.get("title") != title["title"] or got_seasons != seasons or got_episodes != stored:
        sys.exit(f"details or episodes disagree with the store: {detail.status_code} {detail.text[:300]} / "
                 f"{listed.status_code} {listed.text[:300]}")
    return {"details_ms": (t1 - t0) * 1000, "episodes_ms": (t2 - t1) * 1000}


def copy_store(root: Path, into: Path) -> None:
    """A run works on a copy, so every run starts from the same prepared store."""
    shutil.copytree(root / "mongo", into / "mongo", ignore=shutil.ignore_patterns(*SPARE))
    shutil.copytree(root / "data", into / "data", ignore=shutil.ignore_patterns(*SPARE))


def run_concurrently(*loads: Callable[[], Result]) -> list[Result]:
    """Each load in a thread of its own (each drives a generator process), started together."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(len(loads)) as pool:
        return [f.result() for f in [pool.submit(load) for load in loads]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--titles", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=5_000, help="the history's profiles, the viewer's included")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "nameless-bench" / "catalog",
                        help="where prepared stores are kept, one per size")
    parser.add_argument("--rebuild", action="store_true", help="prepare the store again even if it is kept")
    parser.add_argument("--prepare-only", action="store_true", help="prepare (or find) the store and stop")
    parser.add_argument("--startup-only", action="store_true",
                        help="start-up, RSS, model size and a details check; no load runs")
    parser.add_argument("--no-recommendations-wait", action="store_true",
                        help="measure at once, not after the first recommendations run (30 s after start): "
                             "only for runs that end before it")
    parser.add_argument("--app-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the measured app (repeatable)")
    parser.add_argument("--mixed-duration", type=float, default=35.0,
                        help="seconds of each mixed run (default 35: past the 30 s the viewer's activity is kept)")
    parser.add_argument("--mixed-rounds", type=int, default=3, help="alternated mixed runs, alone and with history")
    parser.add_argument("--mixed-extra", default="history", metavar="PATH",
                        help="what the one more connection reads: history page 5 (default), or a path to compare "
                             "with, such as /api/v1/me/profiles")
    parser.add_argument("--only", help="comma-separated substrings: run only the matching endpoints")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    args.generator = pick_generator(args.generator)
    root, state = prepared_store(args)
    if args.prepare_only:
        print(json.dumps({"store": str(root), **state}))
        return 0
    loadavg_before = load_average()
    settings = {**APP_SETTINGS, **dict(kv.split("=", 1) for kv in args.app_env)}
    from storage.embedded_mongo import EmbeddedMongo

    results: dict[str, Result] = {}
    rounds: dict[str, list[Result]] = {}
    with scratch_dir("nameless-catalog-bench-") as tmp:
        started = time.monotonic()
        copy_store(root, tmp)
        copy_s = time.monotonic() - started
        mongo = EmbeddedMongo(tmp / "mongo")
        url = mongo.start()
        port = free_port()
        app = None
        try:
            started = time.monotonic()
            app, log = start_app(port, tmp, data_dir=tmp / "data", MONGO_URL=url, **settings)
            wait_until_answers(app, port, "/readyz", "app", log, timeout=900)
            startup = {"copy_store_s": copy_s, "start_to_ready_s": time.monotonic() - started,
                       "app_rss_mb": rss_kb(app.pid) / 1024}
            base = f"http://127.0.0.1:{port}/api/v1"
            client = MongoClient(url, tz_aware=True)
            db = client["bench"]
            token = httpx.post(f"{base}/auth/login", json={"email": state["email"], "password": BENCH_PASSWORD},
                               timeout=30).json()["access_token"]
            startup.update(details_check(base, token, db))
            startup["app_rss_after_mb"] = rss_kb(app.pid) / 1024
            if args.startup_only:
                startup.update(model_size(url))
            timings = state["timings"]
            if not args.json:
                print("loaded: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in timings.items()))
                print("start: " + ", ".join(f"{k} {v:.1f}" for k, v in startup.items()))
            if args.explain:
                for name, plan in explain_viewer_queries(db):
                    print(f"  plan {name:<18} {plan}")
            if args.startup_only:
                client.close()
                if args.json:
                    print(json.dumps({"load": timings, "startup": startup}))
                return 0
            # The app runs the recommendations job 30 s after start: let it finish before any
            # endpoint is measured, or it lands inside one of them.
            # The first trending run (5 s after start) rewrites the titles' scores: not inside a run either.
            startup["first_trending_s"] = wait_for_log(log, "trending computed", 600) - started
            if not args.no_recommendations_wait:
                startup["first_recommendations_s"] = wait_for_log(log, "recommendations computed", 1800) - started
                if not args.json:
                    print(f"first recommendations run ended {startup['first_recommendations_s']:.1f} s after start")
            page5 = history_page5(base, token)
            others = [("GET /home", "/api/v1/home"),
                      ("GET /titles?genre&type&sort=new", "/api/v1/titles?genre=genre-3&type=movie&sort=new"),
                      ("GET /titles?q=sha", "/api/v1/titles?q=sha"),
                      ("GET /titles?q=silver nak", "/api/v1/titles?q=silver%20nak")]
            # One connection first: a short run with --no-recommendations-wait ends before the job.
            targets: list[tuple[str, list[str], str | None, int]] = [
                ("GET /healthz, 1 connection", ["/healthz"], None, 1),
                ("GET /me/history page 5, 1 connection alone", [page5], token, 1),
                ("GET /healthz", ["/healthz"], None, args.connections),
                ("GET /me/profiles (1 DB read)", ["/api/v1/me/profiles"], token, args.connections),
                *((name, [path], token, args.connections) for name, path in others),
                ("GET /me/history page 5", [page5], token, args.connections),
            ]
            if args.only:
                wanted = args.only.split(",")
                targets = [t for t in targets if t[0] == "GET /healthz" or any(w in t[0] for w in wanted)]
            for name, paths, auth, connections in targets:
                wait_idle(port)
                t0 = time.monotonic()
                check = httpx.get(f"http://127.0.0.1:{port}{paths[0]}",
                                  headers={"Authorization": f"Bearer {auth}"} if auth else {}, timeout=120)
                if not args.json:
                    print(f"  one {name}: {(time.monotonic() - t0) * 1000:.0f} ms")
                if check.status_code != 200:
                    tail = log.read_text(errors="replace")[-3000:]
                    sys.exit(f"{name} answered {check.status_code}: {check.text[:300]}\n{tail}")
                run_load(port, paths, auth, args, 1.0, tmp, connections)  # warm-up, not counted
                wait_idle(port)
                meter = CpuMeter(app.pid)
                results[name] = run_load(port, paths, auth, args, args.duration, tmp, connections)
                (results[name].server_cpu,), _ = meter.shares()
            if not args.only or "mixed" in args.only:
                # The mixed load alone and with one more connection reading history page 5
                # meanwhile, alternated: what the history reads cost the others.
                mixed = [p for _, p in others]
                extra, extra_name = ((page5, "history page 5") if args.mixed_extra == "history"
                                     else (args.mixed_extra, args.mixed_extra))
                rounds = {"alone": [], "with": [], "history": []}
                run_load(port, mixed, token, args, 1.0, tmp, args.connections)  # warm-up, not counted
                for _ in range(args.mixed_rounds):
                    wait_idle(port)
                    meter = CpuMeter(app.pid)
                    alone = run_load(port, mixed, token, args, args.mixed_duration, tmp, args.connections)
                    (alone.server_cpu,), _ = meter.shares()
                    wait_idle(port)
                    meter = CpuMeter(app.pid)
                    with_history, history = run_concurrently(
                        lambda: run_load(port, mixed, token, args, args.mixed_duration, tmp, args.connections),
                        lambda: run_load(port, [extra], token, args, args.mixed_duration, tmp, 1))
                    (with_history.server_cpu,), _ = meter.shares()
                    history.server_cpu = with_history.server_cpu
                    rounds["alone"].append(alone)
                    rounds["with"].append(with_history)
                    rounds["history"].append(history)
                results["mixed: home, browse, 2 searches"] = median_result(rounds["alone"])
                results[f"mixed, with {extra_name} on 1 more connection"] = median_result(rounds["with"])
                results[f"  {extra_name} within the mixed load"] = median_result(rounds["history"])
            startup.update(model_size(url))  # after the runs: it reads every title from the store
            if not args.json:
                print(f"model: {startup['model_bytes'] / 1e6:.1f} MB, "
                      f"{startup['model_bytes_per_title']:.0f} bytes a title")
            client.close()
        finally:
            stop(app)
            mongo.stop()
    base_rps = results["GET /healthz"].rps
    base_p99 = results["GET /healthz"].p99_ms
    if args.json:
        print(json.dumps({"load": timings, "startup": startup, "results": {k: vars(v) for k, v in results.items()},
                          "mixed_rounds": {k: [vars(r) for r in v] for k, v in rounds.items()},
                          "rps_ratio_to_healthz": {k: v.rps / base_rps for k, v in results.items()}}))
        return 0
    print(f"\n{args.titles} titles, {args.episodes} episodes, {timings['history_rows']} history rows over "
          f"{timings['history_profiles']} profiles; {args.connections} connections, {args.duration:.0f} s each, "
          f"{args.generator} ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC); "
          f"load average {loadavg_before} before, {load_average()} after")
    print(f"{'endpoint':<50} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non2xx':>7} {'cpu':>5} "
          f"{'rps/healthz':>12} {'p99/healthz':>12}")
    for name, r in results.items():
        print(f"{name:<50} {r.rps:>8.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.non2xx + r.errors:>7} "
              f"{r.server_cpu:>5.2f} {r.rps / base_rps:>12.3f} {r.p99_ms / base_p99:>12.2f}")
    for name, runs in rounds.items():
        print(f"mixed rounds, {name}: " + "; ".join(f"{r.rps:.0f} req/s, p99 {r.p99_ms:.1f} ms" for r in runs))
    return 1 if any(r.non2xx or r.errors for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
