"""GET /healthz on the real app against a bare Tornado hello-world, same run, same load.

    .venv/bin/python bench/healthz.py [--duration 10] [--connections 50] [--generator auto|wrk|python]

Starts `run.py` (embedded defaults, a temporary data dir, a free loopback port) and a
bare Tornado app answering a small JSON, each as its own subprocess, then drives each in
turn with the same load generator, itself a separate process: `wrk` when installed, else
the asyncio keep-alive generator of bench/harness.py (`harness.py --generate`, run as a
subprocess). Prints requests per second and p50/p99 latency of both, and the ratios app/bare.

The app keeps its shipped defaults except the per-IP rate limit, raised so that the load
(all from 127.0.0.1) is not answered 429: the limiter still runs on every request.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from harness import (
    LOAD_COLUMNS,
    CpuMeter,
    Result,
    free_port,
    generator_main,
    header_line,
    median_result,
    parse_wrk_latency,
    pick_generator,
    ratio_line,
    result_line,
    run_command,
    run_python_generator,
    run_tornado,
    scratch_dir,
    start_app,
    start_script,
    stop,
    wait_until_answers,
    wrk_command,
    wrk_seconds,
)

HEALTHZ = "/healthz"


# --- the bare baseline server ------------------------------------------------------------


def serve_bare(port: int) -> None:
    """A Tornado hello-world answering a small JSON; runs in its own process."""
    import tornado.web

    class Hello(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(b'{"status":"ok"}')

    run_tornado(port, [(HEALTHZ, Hello)])


# --- running a load generator (always in its own process) --------------------------------


def run_wrk(port: int, args: argparse.Namespace, duration: float) -> Result:
    cmd = [*wrk_command(args.threads, args.connections, duration, "--latency"), f"http://127.0.0.1:{port}{HEALTHZ}"]
    out = run_command(cmd, wrk_seconds(duration) + 30)
    figures = parse_wrk_latency(out)
    if figures is None:
        sys.exit(f"wrk printed no latency percentiles:\n{out}")
    return Result(**figures)


def run_generator(port: int, args: argparse.Namespace, duration: float, tmp: Path) -> Result:
    figures = run_python_generator(port, [HEALTHZ], args.connections, duration, tmp)
    return Result(**{name: figures[name] for name in ("rps", "p50_ms", "p99_ms", "requests", "non2xx", "errors")})


def load(server: subprocess.Popen, port: int, args: argparse.Namespace, duration: float, tmp: Path) -> Result:
    """One load run against `port`, with the CPU the server and the generator used."""
    meter = CpuMeter(server.pid)
    if args.generator == "wrk":
        result = run_wrk(port, args, duration)
    else:
        result = run_generator(port, args, duration, tmp)
    (result.server_cpu,), result.generator_cpu = meter.shares()
    return result


# --- main ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per server (default 10)")
    p.add_argument("--connections", type=int, default=50, help="concurrent keep-alive connections (default 50)")
    p.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                   help="load generator: wrk if installed (auto), or the Python fallback")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the server needs a core)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first (default 1)")
    p.add_argument("--rounds", type=int, default=1,
                   help="alternated bare/app runs; each figure is the median over them (default 1)")
    p.add_argument("--log-level", default="INFO", help="NAMELESS_LOG_LEVEL of the app (default INFO, as shipped)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--generate", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return p


def main() -> int:
    args = _parser().parse_args()
    if args.bare_server is not None:
        serve_bare(args.bare_server)
        return 0
    if args.generate is not None:  # the generator process, by hand (the bench starts bench/harness.py --generate)
        return generator_main(args.generate, [HEALTHZ], args.connections, args.duration)
    args.generator = pick_generator(args.generator)

    runs: dict[str, list[Result]] = {"bare": [], "app": []}
    with scratch_dir() as tmp:
        app_port, bare_port = free_port(), free_port()
        app, app_log = start_app(app_port, tmp, data_dir=tmp / "data", NAMELESS_LOG_LEVEL=args.log_level,
                                 NAMELESS_RATE_LIMIT_IP=str(10**9))
        bare, bare_log = start_script(__file__, ["--bare-server", str(bare_port)], tmp, "bare")
        try:
            wait_until_answers(app, app_port, "/readyz", "run.py", app_log)
            wait_until_answers(bare, bare_port, HEALTHZ, "bare tornado", bare_log)
            if args.warmup > 0:
                load(bare, bare_port, args, args.warmup, tmp)
                load(app, app_port, args, args.warmup, tmp)
            for _ in range(args.rounds):  # alternate, so drift in the machine hits both alike
                runs["bare"].append(load(bare, bare_port, args, args.duration, tmp))
                runs["app"].append(load(app, app_port, args, args.duration, tmp))
        finally:
            stop(app)
            stop(bare)

    results = {name: median_result(rs) for name, rs in runs.items()}
    app_r, bare_r = results["app"], results["bare"]
    ratios = {"rps": app_r.rps / bare_r.rps, "p99": app_r.p99_ms / bare_r.p99_ms}
    if args.json:
        print(json.dumps({"generator": args.generator, "connections": args.connections,
                          "duration": args.duration, "rounds": args.rounds,
                          "app": vars(app_r), "bare": vars(bare_r),
                          "ratio_app_over_bare": ratios}))
    else:
        rounds = f", median of {args.rounds} alternated rounds" if args.rounds > 1 else ""
        print(f"GET {HEALTHZ}: {args.generator}, {args.connections} connections, {args.duration:g} s each"
              f" (+{args.warmup:g} s warm-up){rounds}, {os.cpu_count()} CPUs")
        print(header_line(LOAD_COLUMNS, 14))
        for name, r in (("bare tornado", bare_r), ("nameless app", app_r)):
            print(result_line(name, r, LOAD_COLUMNS, 14))
        print("(CPU: share of one core used by the server process and by the load generator)")
        print(ratio_line("app/bare", {"req/s": ratios["rps"], "p99": ratios["p99"]}))
    bad = [name for name, r in results.items() if r.non2xx or r.errors]
    if bad:
        print(f"warning: non-2xx responses or socket errors from {', '.join(bad)}; figures are suspect",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
