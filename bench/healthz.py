"""GET /healthz on the real app against a bare Tornado hello-world, same run, same load.

    .venv/bin/python bench/healthz.py [--duration 10] [--connections 50] [--generator auto|wrk|python]

Starts `run.py` (embedded defaults, a temporary data dir, a free loopback port) and a
bare Tornado app answering a small JSON, each as its own subprocess, then drives each in
turn with the same load generator, itself a separate process: `wrk` when installed, else
the asyncio keep-alive generator of this file (`--generate`, run as a subprocess). Prints
requests per second and p50/p99 latency of both, and the ratios app/bare.

The app keeps its shipped defaults except the per-IP rate limit, raised so that the load
(all from 127.0.0.1) is not answered 429: the limiter still runs on every request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEALTHZ = "/healthz"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the bare baseline server ------------------------------------------------------------


def serve_bare(port: int) -> None:
    """A Tornado hello-world answering a small JSON; runs in its own process."""
    import tornado.ioloop
    import tornado.web

    class Hello(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(b'{"status":"ok"}')

    async def main() -> None:
        app = tornado.web.Application([(HEALTHZ, Hello)], log_function=lambda handler: None)
        app.listen(port, "127.0.0.1")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    asyncio.run(main())


# --- the fallback load generator -----------------------------------------------------------


async def _client(host: str, port: int, path: str, until: float, latencies: list[float], counts: dict) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < until:
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("closed by server")
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            counts["ok" if 200 <= status < 400 else "non2xx"] += 1
    finally:
        writer.close()


async def _generate(url_host: str, port: int, path: str, connections: int, duration: float) -> dict:
    latencies: list[float] = []
    counts = {"ok": 0, "non2xx": 0, "errors": 0}
    started = time.monotonic()
    until = started + duration
    results = await asyncio.gather(
        *(_client(url_host, port, path, until, latencies, counts) for _ in range(connections)),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    counts["errors"] = sum(1 for r in results if isinstance(r, BaseException))
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": _percentile(latencies, 50) * 1000,
        "p99_ms": _percentile(latencies, 99) * 1000,
        "non2xx": counts["non2xx"],
        "errors": counts["errors"],
    }


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


# --- running a load generator (always in its own process) --------------------------------


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    errors: int
    server_cpu: float = float("nan")  # share of one core the server process used
    generator_cpu: float = float("nan")  # share of one core the load generator used


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def _run(cmd: list[str], timeout: float) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        sys.exit(f"load generator failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr.strip()}")
    return done.stdout


def run_wrk(port: int, args: argparse.Namespace, duration: float) -> Result:
    seconds = max(1, round(duration))  # wrk takes whole seconds
    cmd = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency",
        f"http://127.0.0.1:{port}{HEALTHZ}",
    ]
    out = _run(cmd, seconds + 30)
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    requests = int(re.search(r"^\s*(\d+) requests in", out, re.MULTILINE).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Result(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=_wrk_ms(pct["50"]),
        p99_ms=_wrk_ms(pct["99"]),
        requests=requests,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        errors=sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    )


def run_python_generator(port: int, args: argparse.Namespace, duration: float) -> Result:
    cmd = [
        sys.executable, __file__, "--generate", str(port),
        "--connections", str(args.connections), "--duration", str(duration),
    ]
    return Result(**json.loads(_run(cmd, duration + 30)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc), NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load(server: subprocess.Popen, port: int, args: argparse.Namespace, duration: float) -> Result:
    """One load run against `port`, with the CPU the server and the generator used."""
    server_before, generator_before = cpu_seconds(server.pid), children_cpu_seconds()
    started = time.monotonic()
    if args.generator == "wrk":
        result = run_wrk(port, args, duration)
    else:
        result = run_python_generator(port, args, duration)
    elapsed = time.monotonic() - started
    result.server_cpu = (cpu_seconds(server.pid) - server_before) / elapsed
    result.generator_cpu = (children_cpu_seconds() - generator_before) / elapsed
    return result


def median(results: list[Result]) -> Result:
    """Each figure's median over the rounds (counts are summed)."""
    mid = statistics.median
    return Result(
        rps=mid([r.rps for r in results]),
        p50_ms=mid([r.p50_ms for r in results]),
        p99_ms=mid([r.p99_ms for r in results]),
        requests=sum(r.requests for r in results),
        non2xx=sum(r.non2xx for r in results),
        errors=sum(r.errors for r in results),
        server_cpu=mid([r.server_cpu for r in results]),
        generator_cpu=mid([r.generator_cpu for r in results]),
    )


# --- servers under test ----------------------------------------------------------------------


def wait_until_answers(proc: subprocess.Popen, port: int, path: str, name: str, log: Path | None,
                       timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            detail = log.read_text(errors="replace")[-2000:] if log else ""
            sys.exit(f"{name} exited with {proc.returncode} before answering\n{detail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(request)
                if s.recv(12).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{name} did not answer {path} within {timeout:.0f}s")


def start_app(port: int, tmp: Path, log_level: str) -> tuple[subprocess.Popen, Path]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NAMELESS_") and k not in ("MONGO_URL", "REDIS_URL")}
    env.update(
        NAMELESS_HOST="127.0.0.1",
        NAMELESS_PORT=str(port),
        NAMELESS_DATA_DIR=str(tmp / "data"),
        NAMELESS_LOG_LEVEL=log_level,
        NAMELESS_RATE_LIMIT_IP=str(10**9),
    )
    log = tmp / "app.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=tmp, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    return proc, log


def start_bare(port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--bare-server", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
    if args.generate is not None:
        result = asyncio.run(_generate("127.0.0.1", args.generate, HEALTHZ, args.connections, args.duration))
        print(json.dumps(result))
        return 0

    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
    elif args.generator == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk), use --generator python")

    runs: dict[str, list[Result]] = {"bare": [], "app": []}
    with tempfile.TemporaryDirectory(prefix="nameless-bench-") as tmpdir:
        tmp = Path(tmpdir)
        app_port, bare_port = free_port(), free_port()
        app, app_log = start_app(app_port, tmp, args.log_level)
        bare = start_bare(bare_port)
        try:
            wait_until_answers(app, app_port, "/readyz", "run.py", app_log)
            wait_until_answers(bare, bare_port, HEALTHZ, "bare tornado", None)
            if args.warmup > 0:
                load(bare, bare_port, args, args.warmup)
                load(app, app_port, args, args.warmup)
            for _ in range(args.rounds):  # alternate, so drift in the machine hits both alike
                runs["bare"].append(load(bare, bare_port, args, args.duration))
                runs["app"].append(load(app, app_port, args, args.duration))
        finally:
            stop(app)
            stop(bare)

    results = {name: median(rs) for name, rs in runs.items()}
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
        print(f"{'':14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'non-2xx':>9}{'errors':>8}"
              f"{'server CPU':>12}{'load CPU':>10}")
        for name, r in (("bare tornado", bare_r), ("nameless app", app_r)):
            print(f"{name:14}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.requests:>10}"
                  f"{r.non2xx:>9}{r.errors:>8}{r.server_cpu:>12.0%}{r.generator_cpu:>10.0%}")
        print("(CPU: share of one core used by the server process and by the load generator)")
        print(f"ratio app/bare: req/s {ratios['rps']:.2f}, p99 {ratios['p99']:.2f}")
    bad = [name for name, r in results.items() if r.non2xx or r.errors]
    if bad:
        print(f"warning: non-2xx responses or socket errors from {', '.join(bad)}; figures are suspect",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
