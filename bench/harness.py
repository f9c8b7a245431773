"""The one harness of the benchmarks in bench/: the machinery around each script's own measurement.

    .venv/bin/python bench/harness.py --generate PORT --paths-file FILE [--connections 50] [--duration 5] [--once]
        (the HTTP load generator process, started by `run_python_generator`, not by hand)

- processes: `run.py` and helper scripts as subprocesses in a scratch dir with a clean
  environment and a log file (`start_app`, `start_script`, `create_superuser`), waiting
  until a port answers (`wait_until_answers`), SIGTERM then SIGKILL (`stop`), the servers'
  side of a bare baseline (`run_tornado`, `wait_for_stop_signal`), free loopback ports and
  the open-files limit;
- load: `wrk` when it is on the PATH (`pick_generator`; `wrk --latency` output parsed by
  `parse_wrk_latency`, a list of paths through a Lua script by `run_wrk_paths`), else the
  asyncio keep-alive generator of this file, always in a process of its own;
  `load_paths` runs either with the CPU accounting around it;
- CPU and memory of processes from Linux /proc and getrusage (`cpu_seconds`, `CpuMeter`,
  `wait_idle`, `rss_kb`; psutil is not a dependency), the load average;
- figures: `percentile`, `median_result` over rounds, and the lines printing a result
  table and its ratio to the baseline measured in the same run (`header_line`,
  `result_line`, `ratio_line`).

It imports only the standard library, so every process (generators included) can use it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

ROOT = Path(__file__).resolve().parent.parent
RUN_PY = ROOT / "run.py"
HOST = "127.0.0.1"
NAN = float("nan")


# --- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def raise_nofile() -> int:
    """Raise this process's soft limit on open files to the hard one; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_files_limit(pid: int) -> tuple[int, int]:
    """(soft, hard) limit on open files of a live process, from /proc/PID/limits; (-1, -1)
    when it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return -1, -1
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    return -1, -1


def log_lines(log: Path, needle: str) -> list[str]:
    """The lines of a process's log that contain `needle` (the log may be gone: none)."""
    try:
        return [line for line in log.read_text(errors="replace").splitlines() if needle in line]
    except OSError:
        return []


@contextlib.contextmanager
def scratch_dir(prefix: str = "nameless-bench-") -> Iterator[Path]:
    """A temporary directory for data dirs and logs, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


def clean_env(**extra: str) -> dict[str, str]:
    """The inherited environment without any setting of ours, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NAMELESS_") and k not in ("MONGO_URL", "REDIS_URL")}
    env.update(extra)
    return env


def app_env(port: int, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of `run.py` on loopback `port` with its data under `data_dir`: shipped
    defaults (see clean_env) except `settings`."""
    return clean_env(NAMELESS_HOST=HOST, NAMELESS_PORT=str(port), NAMELESS_DATA_DIR=str(data_dir), **settings)


def start_script(script: str, args: list[str], tmp: Path, name: str, env: dict[str, str] | None = None,
                 python_args: Sequence[str] = ()) -> tuple[subprocess.Popen, Path]:
    """`python [python_args] script args` in `tmp` (clean_env() unless `env`), stdin and stdout
    to /dev/null, stderr to tmp/<name>.log; returns the process and its log."""
    log = tmp / f"{name}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, *python_args, script, *args], cwd=tmp, env=env or clean_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    return proc, log


def start_app(port: int, tmp: Path, name: str = "app", *, data_dir: Path | None = None,
              **settings: str) -> tuple[subprocess.Popen, Path]:
    """`run.py` as a subprocess on `port` (app_env: data under `data_dir`, default tmp/name),
    stderr to tmp/name.log."""
    return start_script(str(RUN_PY), [], tmp, name, app_env(port, data_dir or tmp / name, **settings))


def create_superuser(env: dict[str, str], cwd: Path, email: str, password: str, timeout: float = 180.0) -> None:
    """`run.py createsuperuser --email EMAIL` on the app's environment; exits on failure."""
    done = subprocess.run([sys.executable, str(RUN_PY), "createsuperuser", "--email", email], cwd=cwd,
                          env={**env, "NAMELESS_SUPERUSER_PASSWORD": password},
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        sys.exit(f"createsuperuser failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def wait_until_answers(proc: subprocess.Popen, port: int, path: str, name: str, log: Path | None,
                       timeout: float = 60.0) -> None:
    """Poll GET `path` on loopback `port` until it answers 200; exits (with the tail of `log`)
    if the process ends first, or after `timeout` s."""
    deadline = time.monotonic() + timeout
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            detail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            sys.exit(f"{name} exited with {proc.returncode} before answering\n{detail}")
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                s.sendall(request)
                if s.recv(12).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{name} did not answer {path} within {timeout:.0f}s")


def stop(proc: subprocess.Popen | None, timeout: float = 20.0, *, name: str = "", log: Path | None = None,
         warn_after: float | None = None) -> float:
    """SIGTERM, wait up to `timeout` s, then SIGKILL; returns the seconds it took to exit (0 if
    it was not running). With `warn_after`, an exit slower than that or a kill is reported on
    stderr with the tail of the process's log."""
    if proc is None or proc.poll() is not None:
        return 0.0
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    killed = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        killed = True
    took = time.monotonic() - started
    if warn_after is not None and (killed or took > warn_after):
        tail = log.read_text(errors="replace")[-1500:] if log and log.exists() else ""
        print(f"warning: {name or proc.args} took {took:.1f} s to stop after SIGTERM"
              f"{' and was killed' if killed else ''}\n{tail}", file=sys.stderr)
    return took


async def wait_for_stop_signal() -> None:
    """Return once this process gets SIGTERM or SIGINT (the way `stop` ends a server)."""
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_event.set)
    await stop_event.wait()


def run_tornado(port: int, rules: list, **settings: Any) -> None:
    """A Tornado application on loopback `port`, no access log, until SIGTERM or SIGINT: the
    body of a bare baseline server, which runs in a process of its own."""
    import tornado.web

    async def main() -> None:
        app = tornado.web.Application(rules, log_function=lambda handler: None, **settings)
        app.listen(port, HOST)
        await wait_for_stop_signal()

    asyncio.run(main())


# --- CPU and memory of processes -------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc), NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return NAN
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU time of this process's children that have ended and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU used from its creation on: by the live processes `pids` (None: NaN) and by this
    process's children that end meanwhile (a load generator run with subprocess.run)."""

    def __init__(self, *pids: int | None) -> None:
        self.pids = pids
        self._before = [cpu_seconds(p) if p else NAN for p in pids]
        self._children = children_cpu_seconds()
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def used(self) -> list[float]:
        """CPU seconds of each of `pids` since the start, in their order."""
        return [(cpu_seconds(p) if p else NAN) - before for p, before in zip(self.pids, self._before, strict=True)]

    def shares(self, elapsed: float | None = None) -> tuple[list[float], float]:
        """Shares of one core over the window: each of `pids`, and the children together."""
        elapsed = self.elapsed() if elapsed is None else elapsed
        each = [used / elapsed for used in self.used()]
        return each, (children_cpu_seconds() - self._children) / elapsed


async def wait_idle(pid: int, timeout: float = 120.0, step: float = 0.5, idle_share: float = 0.05
                    ) -> tuple[float, float]:
    """Wait until the process uses under `idle_share` of a core over `step` seconds (or
    `timeout`); returns (CPU seconds it used meanwhile, seconds waited until it was idle)."""
    started, cpu0 = time.monotonic(), cpu_seconds(pid)
    last = cpu0
    while time.monotonic() - started < timeout:
        await asyncio.sleep(step)
        now = cpu_seconds(pid)
        if now - last < idle_share * step:
            return now - cpu0, time.monotonic() - started - step
        last = now
    return cpu_seconds(pid) - cpu0, time.monotonic() - started


def rss_kb(pid: int, default: int | None = None) -> int:
    """VmRSS of a live process in KB (Linux /proc); `default` when it cannot be read, or an
    error if no default is given."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        if default is None:
            raise
        return default
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    if default is None:
        raise RuntimeError(f"no VmRSS for {pid}")
    return default


def load_average() -> str:
    """The machine's 1-minute load average (other work competes for the same cores)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def load_average_line(start: Sequence[float], end: Sequence[float]) -> str:
    """The report line for two os.getloadavg() readings, at the start and at the end of a run."""
    return f"load average (1 min) at start {start[0]:.1f}, at end {end[0]:.1f}"


# --- figures ----------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return NAN
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass
class Result:
    """One HTTP load run (wrk --latency, or the Python generator) against one server."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    errors: int
    server_cpu: float = NAN  # share of one core the server process used
    generator_cpu: float = NAN  # share of one core the load generator used


@dataclass
class TransferResult:
    """One HTTP load run over a list of paths, with the bytes read (`load_paths`)."""

    rps: float
    mb_s: float  # 10^6 bytes/s read by the client (headers included)
    p50_ms: float
    p99_ms: float
    requests: int
    bytes: int
    non2xx: int
    errors: int
    seconds: float = NAN
    server_cpu: float = NAN
    generator_cpu: float = NAN
    db_cpu: float = NAN  # the app's MongoDB process (nx-27017), when it has one


R = TypeVar("R")
SUMMED = frozenset({"requests", "bytes", "non2xx", "errors", "seconds"})  # counts add up over rounds


def median_result(results: list[R]) -> R:
    """Each figure's median over the rounds (the counts in SUMMED are summed)."""
    values = {f.name: [getattr(r, f.name) for r in results] for f in dataclasses.fields(results[0])}
    return type(results[0])(**{name: sum(v) if name in SUMMED else statistics.median(v) for name, v in values.items()})


class Column(NamedTuple):
    title: str
    key: str  # a field of the result
    width: int
    fmt: str = ""  # format spec after the width (".0f", ".0%", ...)
    blank_nan: bool = False  # print nothing for NaN (a figure that does not apply)


RPS = Column("req/s", "rps", 9, ".0f")
P50 = Column("p50 ms", "p50_ms", 9, ".2f")
P99 = Column("p99 ms", "p99_ms", 9, ".2f")
COUNTS = (Column("requests", "requests", 10), Column("non-2xx", "non2xx", 9), Column("errors", "errors", 8))
CPU = (Column("server CPU", "server_cpu", 12, ".0%"), Column("load CPU", "generator_cpu", 10, ".0%"))
LOAD_COLUMNS = (RPS, P50, P99, *COUNTS, *CPU)  # the table of healthz.py


def mb_s_column(width: int) -> Column:
    return Column("MB/s", "mb_s", width, ".1f")


def header_line(columns: Sequence[Column], name_width: int) -> str:
    return f"{'':{name_width}}" + "".join(f"{c.title:>{c.width}}" for c in columns)


def result_line(name: str, figures: Any, columns: Sequence[Column], name_width: int) -> str:
    """One row of a result table; `figures` is a result dataclass or a dict of its fields."""
    values = figures if isinstance(figures, Mapping) else vars(figures)
    cells = ["" if c.blank_nan and values[c.key] != values[c.key] else f"{values[c.key]:>{c.width}{c.fmt}}"
             for c in columns]
    return f"{name:{name_width}}" + "".join(cells)


def ratio_figures(ratios: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())


def ratio_line(label: str, ratios: Mapping[str, float]) -> str:
    """`ratio app/bare: req/s 0.60, p99 1.40`: figures against the baseline of the same run."""
    return f"ratio {label}: {ratio_figures(ratios)}"


# --- load generators (always a process of their own) --------------------------------------------------


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def pick_generator(choice: str) -> str:
    """`auto` → wrk if installed, else the Python generator; `wrk` must be installed."""
    if choice == "auto":
        return "wrk" if have_wrk() else "python"
    if choice == "wrk" and not have_wrk():
        sys.exit("wrk is not installed (apt-get install wrk), use --generator python")
    return choice


def run_command(cmd: list[str], timeout: float, what: str = "load generator") -> str:
    """Run a load generator to its end; its stdout, or exit with its stderr if it failed."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        sys.exit(f"{what} failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr.strip()[-2000:]}")
    return done.stdout


def wrk_seconds(duration: float) -> int:
    return max(1, round(duration))  # wrk takes whole seconds


def wrk_command(threads: int, connections: int, duration: float, *options: str) -> list[str]:
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{wrk_seconds(duration)}s", *options]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk_latency(out: str) -> dict[str, Any] | None:
    """The figures of `wrk --latency` output (the fields of Result without CPU), None if it
    printed no percentiles."""
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.MULTILINE))  # "8.37s " has a trailing space
    requests = re.search(r"^\s*(\d+) requests in", out, re.MULTILINE)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if len(pct) < 2 or requests is None or rps is None:
        return None
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(rps.group(1)), "p50_ms": wrk_ms(pct["50"]), "p99_ms": wrk_ms(pct["99"]),
        "requests": int(requests.group(1)), "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    }


WRK_SCRIPT = """
local paths = {%(paths)s}
local i = 0
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON %%.0f %%.0f %%.0f %%.0f %%.0f %%.0f %%.0f %%.0f %%.0f %%.0f\\n",
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _safe_path(path: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_./?=&%-]+", path):
        raise ValueError(f"unexpected characters in {path!r}")
    return path


def run_wrk_paths(port: int, paths: list[str], connections: int, duration: float, threads: int,
                  tmp: Path) -> dict[str, Any]:
    """wrk cycling through `paths` (a Lua script printing its own summary); the fields of
    TransferResult without CPU."""
    script = tmp / f"wrk-{secrets.token_hex(4)}.lua"
    script.write_text(WRK_SCRIPT % {"paths": ", ".join(f'"{_safe_path(p)}"' for p in paths)})
    cmd = [*wrk_command(threads, connections, duration, "--timeout", "10s", "-s", str(script)), f"http://{HOST}:{port}/"]
    out = run_command(cmd, wrk_seconds(duration) + 60, what="wrk")
    found = re.search(r"^WRKJSON (.+)$", out, re.MULTILINE)
    if not found:
        sys.exit(f"wrk printed no summary:\n{out}")
    req, nbytes, dur_us, c, r, w, t, status, p50, p99 = (float(x) for x in found.group(1).split())
    secs = dur_us / 1e6
    return {"rps": req / secs, "mb_s": nbytes / secs / 1e6, "p50_ms": p50 / 1000, "p99_ms": p99 / 1000,
            "requests": int(req), "bytes": int(nbytes), "non2xx": int(status), "errors": int(c + r + w + t),
            "seconds": secs}


async def _client(port: int, next_path, until: float, latencies: list[float], counts: dict, extra: str = "") -> None:
    reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
    try:
        while time.monotonic() < until:
            path = next_path()
            if path is None:
                return
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{extra}\r\n".encode())
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("closed by server")
            got = len(status_line)
            length = None
            while True:
                line = await reader.readline()
                got += len(line)
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                raise ConnectionError("response without Content-Length")
            remaining = length
            while remaining:  # read big bodies in pieces, without keeping them
                chunk = await reader.read(min(remaining, 1 << 18))
                if not chunk:
                    raise ConnectionError("closed mid-body")
                remaining -= len(chunk)
            latencies.append(time.perf_counter() - started)
            counts["bytes"] += got + length
            status = int(status_line.split()[1])
            counts["ok" if 200 <= status < 400 else "non2xx"] += 1
    finally:
        writer.close()


async def http_load(port: int, paths: list[str], connections: int, duration: float, once: bool = False,
                    headers: Mapping[str, str] | None = None) -> dict:
    """The asyncio keep-alive generator: `connections` connections, each sending its next
    request (with `headers`) when the last answer has been read, cycling through `paths` for
    `duration` s (or each path once with `once`). The fields of TransferResult without CPU."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    latencies: list[float] = []
    counts = {"ok": 0, "non2xx": 0, "bytes": 0}
    state = {"i": 0}

    def next_path() -> str | None:
        i = state["i"]
        state["i"] += 1
        if once:
            return paths[i] if i < len(paths) else None
        return paths[i % len(paths)]

    started = time.monotonic()
    results = await asyncio.gather(
        *(_client(port, next_path, started + duration, latencies, counts, extra) for _ in range(connections)),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "mb_s": counts["bytes"] / elapsed / 1e6,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "requests": len(latencies), "bytes": counts["bytes"], "non2xx": counts["non2xx"],
            "errors": sum(1 for r in results if isinstance(r, BaseException)), "seconds": elapsed}


def generator_main(port: int, paths: list[str], connections: int, duration: float, once: bool = False,
                   headers: Mapping[str, str] | None = None) -> int:
    """The generator process: one run of http_load, its figures as one JSON line on stdout."""
    print(json.dumps(asyncio.run(http_load(port, paths, connections, duration, once, headers))))
    return 0


def run_python_generator(port: int, paths: list[str], connections: int, duration: float, tmp: Path,
                         once: bool = False, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """http_load in a process of its own (`harness.py --generate`); its figures. Headers
    (a bearer token) travel in a file of the scratch dir, never on a command line."""
    paths_file = tmp / f"paths-{secrets.token_hex(4)}.json"
    paths_file.write_text(json.dumps({"paths": paths, "headers": dict(headers or {})}))
    cmd = [sys.executable, __file__, "--generate", str(port), "--paths-file", str(paths_file),
           "--connections", str(connections), "--duration", str(duration)] + (["--once"] if once else [])
    return json.loads(run_command(cmd, duration + 60))


def load_paths(server_pid: int, port: int, paths: list[str], *, generator: str, connections: int, duration: float,
               tmp: Path, threads: int = 1, once: bool = False, db_pid: int | None = None) -> TransferResult:
    """One load run over `paths` (wrk, or the Python generator, which `once` needs) with the
    CPU the server, the generator and the database process used (shares of one core)."""
    meter = CpuMeter(server_pid, db_pid)
    if generator == "wrk" and not once:
        result = TransferResult(**run_wrk_paths(port, paths, connections, duration, threads, tmp))
    else:
        result = TransferResult(**run_python_generator(port, paths, connections, duration, tmp, once=once))
    (result.server_cpu, db_cpu), result.generator_cpu = meter.shares()
    if db_pid:
        result.db_cpu = db_cpu
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="The HTTP load generator process of the benchmarks (see bench/harness.py).")
    p.add_argument("--generate", type=int, metavar="PORT", required=True, help="loopback port to load")
    p.add_argument("--paths-file", required=True,
                   help="JSON list of the paths to request, in turn, or {paths, headers}")
    p.add_argument("--connections", type=int, default=50, help="concurrent keep-alive connections (default 50)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of load (default 5)")
    p.add_argument("--once", action="store_true", help="request each path once, then stop")
    return p


if __name__ == "__main__":
    _args = _parser().parse_args()
    _spec = json.loads(Path(_args.paths_file).read_text())
    _spec = _spec if isinstance(_spec, dict) else {"paths": _spec}
    sys.exit(generator_main(_args.generate, _spec["paths"], _args.connections, _args.duration, _args.once,
                            _spec.get("headers")))
