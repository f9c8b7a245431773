"""Segment serving: the app's signed /media/ handler against Tornado's plain StaticFileHandler.

    .venv/bin/python bench/media_segments.py [--files 32] [--segment-bytes 1048476] [--duration 5] [--rounds 3]

Sets up the real app exactly as bench/media_playlists.py does (its own embedded MongoDB, a
super admin, a published movie, a viewer with a complimentary Premium plan, a ready
two-hour asset inserted with MediaRepository.put_asset, `POST .../start`), then writes
~1 MB MPEG-TS-shaped files (188-byte packets with the 0x47 sync byte, random payload) as
segments of the 480p rendition (a 1.4 Mbit/s + audio rung: ≈1.1 MB per 6-second segment)
where the transcode job puts them. The segment URLs are the app's own: the playback's
token in the path (`/media/<token>/assets/<asset>/v1/480p/seg_00000.ts`), the file name
relative to the rendition playlist. The app answers them with `MediaHandler` (token check,
then Tornado's StaticFileHandler with a size+mtime ETag).

Baselines, each a bare Tornado app in its own process (`--bare-server`) serving the same
directory, the same URLs (the token is ignored) with `tornado.web.StaticFileHandler`:
  bare         StaticFileHandler as shipped (ETag = SHA-512 of the file, cached in an LRU);
  bare_nohash  the same with compute_etag() returning None (no content hash), to show what
               hashing on first touch costs (only in the cold/first-fetch phase).

Phases (every loop bounded by a count or a duration):
  warm   `wrk` (`-t1`, 50 connections, a Lua script cycling through `--files` segments) for
         `--duration` s per server; `--rounds` alternated rounds, medians. The headline
         ratio app/bare (req/s and MB/s) comes from this phase.
  first  the Python generator of bench/harness.py (its own process), 50 connections,
         each of `--cold-files` files never served before fetched once, then the same list
         again (now hashed by `bare`): first-fetch vs repeat throughput per server. A fresh
         file set every round. This is the case of a catalogue larger than Tornado's hash
         LRU (StaticFileHandler.MAX_CACHED_VERSIONS = 10000 files = 1.7 two-hour titles of
         5 x 1200 segments).

Segments in Cloud Storage are not served by the app at all (a 302 to a V4 signed URL per
request); the cost of that signature is measured by bench/media_playlists.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import (
    COUNTS,
    CPU,
    P50,
    P99,
    RPS,
    TransferResult,
    free_port,
    header_line,
    load_average_line,
    load_paths,
    mb_s_column,
    median_result,
    pick_generator,
    ratio_figures,
    ratio_line,
    result_line,
    rss_kb,
    run_tornado,
    scratch_dir,
    start_script,
    stop,
    wait_until_answers,
)
from media_playlists import BARE_FILES, START_TIMEOUT, AppStack, segment_name

RENDITION = "480p"
TS_PACKET = 188
COLUMNS = (RPS, mb_s_column(9), P50, P99, *COUNTS, *CPU)  # the table of every phase


def write_segment(path: Path, size: int) -> None:
    data = bytearray(os.urandom(size))
    data[::TS_PACKET] = b"\x47" * len(range(0, size, TS_PACKET))  # MPEG-TS sync byte per packet
    path.write_bytes(bytes(data))


def serve_bare_segments(port: int, root: str, no_hash: bool) -> None:
    import tornado.web

    class NoHash(tornado.web.StaticFileHandler):
        def compute_etag(self) -> str | None:
            return None

    handler = NoHash if no_hash else tornado.web.StaticFileHandler
    run_tornado(port, [(BARE_FILES, handler, {"path": root})])


def check_same_bytes(ports: dict[str, int], path: str, expected: bytes) -> dict[str, Any]:
    import httpx

    out = {}
    for name, port in ports.items():
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            full = c.get(path)
            ranged = c.get(path, headers={"Range": "bytes=0-187"})
            etag = full.headers.get("Etag")
            revalidated = c.get(path, headers={"If-None-Match": etag}) if etag else None
            head = c.head(path)
        if full.status_code != 200 or full.content != expected:
            sys.exit(f"{name}: GET segment answered {full.status_code}, {len(full.content)} B")
        if ranged.status_code != 206 or ranged.content != expected[:188]:
            sys.exit(f"{name}: ranged GET answered {ranged.status_code}")
        out[name] = {"content_type": full.headers.get("Content-Type"), "etag": etag,
                     "revalidate_status": revalidated.status_code if revalidated is not None else None,
                     "head_status": head.status_code,
                     "cache_control": full.headers.get("Cache-Control"), "header_bytes": sum(
                         len(k) + len(v) + 4 for k, v in full.headers.items())}
    return out


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    stack = AppStack(tmp, args.log_level, args.profile_app)
    bares: dict[str, subprocess.Popen] = {}
    ports = {"bare": free_port(), "bare_nohash": free_port()}
    warm: dict[str, list[TransferResult]] = {"bare": [], "app": []}
    first: dict[str, list[TransferResult]] = {name: [] for name in ("bare", "bare_nohash", "app")}
    repeat: dict[str, list[TransferResult]] = {name: [] for name in ("bare", "bare_nohash", "app")}
    try:
        stack.start()
        seeded = stack.seed(1200, 6.0)
        base = seeded.rendition_base(RENDITION)  # /media/<token>/assets/<asset>/v1/480p/
        folder = stack.media_root / seeded.prefix / RENDITION
        total = args.files + args.cold_files * args.rounds
        if total > 1200:
            sys.exit("--files + --cold-files x --rounds must stay within the 1200 segments of the playlist")
        started = time.monotonic()
        for i in range(total):
            write_segment(folder / segment_name(i), args.segment_bytes)
        write_s = time.monotonic() - started
        urls = [f"{base}{segment_name(i)}" for i in range(total)]
        warm_urls = urls[:args.files]
        cold_sets = [urls[args.files + r * args.cold_files: args.files + (r + 1) * args.cold_files]
                     for r in range(args.rounds)]

        for name, port in ports.items():
            extra = ["--no-hash"] if name == "bare_nohash" else []
            bares[name], log = start_script(__file__, ["--bare-server", str(port), "--bare-root", str(stack.media_root),
                                                       *extra], tmp, name)
            wait_until_answers(bares[name], port, warm_urls[0], name, log, timeout=START_TIMEOUT)
        targets = {"bare": (bares["bare"], ports["bare"]), "bare_nohash": (bares["bare_nohash"], ports["bare_nohash"]),
                   "app": (stack.proc, stack.port)}
        checks = check_same_bytes({"app": stack.port, **ports}, warm_urls[0], (folder / segment_name(0)).read_bytes())
        common = {"connections": args.connections, "tmp": tmp}

        if args.warmup > 0:
            for name in warm:
                proc, port = targets[name]
                load_paths(proc.pid, port, warm_urls, generator=args.generator, duration=args.warmup, **common)
        for r in range(args.rounds):  # alternate, so drift in the machine hits every server alike
            for name in warm:
                proc, port = targets[name]
                warm[name].append(load_paths(proc.pid, port, warm_urls, generator=args.generator,
                                             duration=args.duration, db_pid=stack.db_pid if name == "app" else None,
                                             **common))
            for name in first:
                proc, port = targets[name]
                first[name].append(load_paths(proc.pid, port, cold_sets[r], generator="python",
                                              duration=args.cold_timeout, once=True, **common))
                repeat[name].append(load_paths(proc.pid, port, cold_sets[r], generator="python",
                                               duration=args.cold_timeout, once=True, **common))
        app_rss = rss_kb(stack.proc.pid, default=-1)
    finally:
        for proc in bares.values():
            stop(proc)
        stack.stop()

    w = {name: median_result(rs) for name, rs in warm.items()}
    f = {name: median_result(rs) for name, rs in first.items()}
    rp = {name: median_result(rs) for name, rs in repeat.items()}
    for name, rs in first.items():  # every cold file must have been fetched once
        short = [x.requests for x in rs if x.requests != args.cold_files]
        if short:
            print(f"warning: {name} first-fetch runs ended early ({short} of {args.cold_files})", file=sys.stderr)
    return {
        "files": args.files, "cold_files": args.cold_files, "segment_bytes": args.segment_bytes,
        "write_seconds": write_s, "checks": checks, "app_rss_kb": app_rss,
        "warm": {k: asdict(v) for k, v in w.items()},
        "first": {k: asdict(v) for k, v in f.items()},
        "repeat": {k: asdict(v) for k, v in rp.items()},
        "rounds_detail": {"warm": {k: [asdict(x) for x in v] for k, v in warm.items()},
                          "first": {k: [asdict(x) for x in v] for k, v in first.items()},
                          "repeat": {k: [asdict(x) for x in v] for k, v in repeat.items()}},
        "ratios": {
            "warm_app_over_bare_rps": w["app"].rps / w["bare"].rps,
            "warm_app_over_bare_mb_s": w["app"].mb_s / w["bare"].mb_s,
            "warm_p99_app_over_bare": w["app"].p99_ms / w["bare"].p99_ms,
            "first_app_over_bare_rps": f["app"].rps / f["bare"].rps,
            "first_over_repeat": {k: f[k].rps / rp[k].rps for k in f},
            "first_bare_over_nohash": f["bare"].rps / f["bare_nohash"].rps,
            "first_app_over_nohash": f["app"].rps / f["bare_nohash"].rps,
        },
    }


def report(out: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"Segments of {out['segment_bytes']:,} B ({RENDITION} rendition), {args.connections} connections,"
          f" {os.cpu_count()} CPUs; wrote {out['files'] + out['cold_files'] * args.rounds} files in"
          f" {out['write_seconds']:.1f} s")
    print(load_average_line(out["loadavg_start"], out["loadavg_end"]))

    def rows(results: dict[str, Any]) -> None:
        print(header_line(COLUMNS, 14))
        for name, x in results.items():
            print(result_line(name, x, COLUMNS, 14))

    print(f"\nwarm: {args.generator}, {out['files']} files in turn, {args.duration:g} s per server, median of"
          f" {args.rounds} alternated rounds")
    rows(out["warm"])
    q = out["ratios"]
    print(ratio_line("app/bare", {"req/s": q["warm_app_over_bare_rps"], "MB/s": q["warm_app_over_bare_mb_s"],
                                  "p99": q["warm_p99_app_over_bare"]}))
    print(f"\nfirst fetch: python generator, {out['cold_files']} files never served before, each once"
          f" (median of {args.rounds} rounds, a new file set each)")
    rows(out["first"])
    print("same files again (repeat):")
    rows(out["repeat"])
    print("first/repeat req/s: " + ratio_figures(q["first_over_repeat"])
          + f"; first fetch app/bare {q['first_app_over_bare_rps']:.2f}, app/bare_nohash"
          f" {q['first_app_over_nohash']:.2f}, bare/bare_nohash {q['first_bare_over_nohash']:.2f}")
    c = out["checks"]
    a = c["app"]
    print(f"headers: app {a['header_bytes']} B (ETag {a['etag']}, If-None-Match → {a['revalidate_status']},"
          f" Content-Type {a['content_type']}, Cache-Control {a['cache_control']!r}),"
          f" bare {c['bare']['header_bytes']} B"
          f" (ETag of {len(c['bare']['etag'] or '')} chars); HEAD: " + ", ".join(
              f"{k} {v['head_status']}" for k, v in c.items()) + f"; app RSS after {out['app_rss_kb'] / 1024:.0f} MB")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=32, help="segments the warm phase cycles through (default 32)")
    p.add_argument("--cold-files", type=int, default=150, help="files per first-fetch round (default 150)")
    p.add_argument("--segment-bytes", type=int, default=5577 * TS_PACKET,
                   help="bytes per segment (default 1,048,476 = 5577 TS packets)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of warm load per server (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="alternated rounds, medians (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured warm load first (default 1)")
    p.add_argument("--cold-timeout", type=float, default=60.0, help="upper bound of one first-fetch run (default 60)")
    p.add_argument("--connections", type=int, default=50, help="concurrent keep-alive connections (default 50)")
    p.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto", help="for the warm phase")
    p.add_argument("--log-level", default="INFO", help="NAMELESS_LOG_LEVEL of the app (default INFO, as shipped)")
    p.add_argument("--profile-app", metavar="FILE", help="run the app under cProfile, stats to FILE (indicative)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--bare-root", help=argparse.SUPPRESS)
    p.add_argument("--no-hash", action="store_true", help=argparse.SUPPRESS)
    return p


def main() -> int:
    args = _parser().parse_args()
    if args.bare_server is not None:
        serve_bare_segments(args.bare_server, args.bare_root, args.no_hash)
        return 0
    args.generator = pick_generator(args.generator)
    load_start = os.getloadavg()
    with scratch_dir() as tmp:
        out = run(args, tmp)
    out.update(loadavg_start=load_start, loadavg_end=os.getloadavg())
    out.update(generator=args.generator, connections=args.connections, duration=args.duration, rounds=args.rounds)
    if args.json:
        print(json.dumps(out))
    else:
        report(out, args)
    bad = [f"{phase}:{name}" for phase in ("warm", "first", "repeat") for name, x in out[phase].items()
           if x["non2xx"] or x["errors"]]
    if bad:
        print(f"warning: non-2xx responses or socket errors in {', '.join(bad)}; figures are suspect", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
