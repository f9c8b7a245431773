"""Shared by the Socket.IO benchmarks: a minimal raw-websocket Socket.IO client, the load
generator process built on it, its driver side, the bare python-socketio baseline
server, and the prologue of the connection benchmarks (their common options, sign-ups
through the API, both servers started and answering, `--bare-server`). Processes, ports
and /proc readings come from bench/harness.py.

    .venv/bin/python bench/sio_load.py --generate     (started by the benchmarks, not by hand)

The client speaks the real wire protocol over one TCP connection per socket, with no
library between it and the bytes: an HTTP/1.1 websocket upgrade of
`GET /socket.io/?EIO=4&transport=websocket`, then Engine.IO v4 / Socket.IO v5 packets in
websocket text frames: the server's open packet `0{...}`, our namespace connect
`40{"token":...}` for "/", its answer `40{"sid":...}` (or `44{...}` when refused), pings
`2` answered with pongs `3`, and events `42["name",{...}]`. Each socket is one
`asyncio.Protocol` (no task, no stream reader), so one generator process drives
thousands of sockets for a few KB each and little CPU. With `deflate=True` it offers
`permessage-deflate` in the upgrade as browsers do, and inflates what the server
compresses.

A generator process is driven through JSON lines: one command per line on its stdin,
one answer per line on its stdout:

    {"cmd": "connect", "group": G, "host": H, "port": P, "tokens": [...], "addrs": [...],
     "concurrency": C, "timeout": S, "deflate": false}
        -> {"ok": n, "failed": m, "errors": {reason: count}, "seconds": s}
    {"cmd": "wait", "group": G, "per_client": k, "count": c, "timeout": S}
        -> once the sockets of G hold k events per live socket, or c events in all when
           "count" is given (or at the timeout):
           {"events": count, "live": n, "complete": bool}
    {"cmd": "take", "group": G}
        -> {"events": [[arrival_time, name, data], ...], "live": n}  (handed over and forgotten)
    {"cmd": "status", "group": G}
        -> {"live": n, "closed": m, "pings": p, "events": e, "close_reasons": {why: count},
            "first_close": time, "received": {k: sockets}}  (closed: sockets the server closed,
           or the network; received: how many live sockets got k events since they connected)
    {"cmd": "close", "group": G}  -> {"closed": n}
    {"cmd": "exit"}

Arrival times are `time.time()` taken when the bytes were read from the socket, so they
compare with a `time.time()` taken in another process of the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from harness import raise_nofile, run_tornado, start_app, start_script, stop, wait_until_answers

SIO_PATH = "/socket.io/?EIO=4&transport=websocket"
PER_GENERATOR = 2500  # sockets per generator process (each costs a few KB and no task)
PER_USER = 10  # sockets per user the app accepts: realtime/gateway.py MAX_SOCKETS_PER_USER
LINE_LIMIT = 1 << 28  # JSON lines between driver and generators carry tokens and events


# --- the client ----------------------------------------------------------------------------


class Refused(Exception):
    pass


class SioSocket(asyncio.Protocol):
    """One Socket.IO client socket on namespace "/" over a raw websocket."""

    def __init__(self, group: Group, host: str, port: int, auth: dict[str, Any], deflate: bool) -> None:
        self.group = group
        self.host, self.port = host, port
        self.auth = json.dumps(auth, separators=(",", ":")).encode()
        self.deflate = deflate
        self.inflater: Any = None
        self.inflate_reset = False
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.fragment_compressed = False
        self.events: list[tuple[float, bytes]] = []
        self.received = 0  # events since the connect, never reset (take hands `events` over)
        self.close_reason = ""
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ready.add_done_callback(_retrieve)  # a late failure after a timeout is not an error to log
        self.live = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        extensions = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if self.deflate else ""
        self.transport.write(
            f"GET {SIO_PATH} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{extensions}\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 16384:
                    self._fail("oversized upgrade answer")
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            del self.buf[: end + 4]
            status = head.split("\r\n", 1)[0]
            if " 101 " not in status + " ":
                self._fail(f"upgrade refused: {status[:60]}")
                return
            self.upgraded = True
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-extensions" and "permessage-deflate" in value:
                    self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    self.inflate_reset = "server_no_context_takeover" in value
        self._frames(now)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.live:  # closed by the server (or the network), not by us
            self.group.closed += 1
            self.group.close_reasons[self.close_reason or "tcp closed"] += 1
            self.group.first_close = self.group.first_close or time.time()
        self.live = False
        self.group.sockets.discard(self)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the namespace connect"))

    # websocket framing

    def _frames(self, now: float) -> None:
        buf = self.buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            length, offset = b1 & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, offset = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, offset = int.from_bytes(buf[2:10], "big"), 10
            if b1 & 0x80:  # servers never mask; skip the key if one does
                offset += 4
            if len(buf) < offset + length:
                return
            payload = bytes(buf[offset:offset + length])
            del buf[: offset + length]
            opcode, fin, compressed = b0 & 0x0F, b0 & 0x80, bool(b0 & 0x40)
            if opcode in (0x1, 0x2, 0x0):
                if opcode != 0x0:
                    self.fragments, self.fragment_compressed = [], compressed
                self.fragments.append(payload)
                if fin:
                    message = b"".join(self.fragments)
                    self.fragments = []
                    if self.fragment_compressed and self.inflater is not None:
                        message = self.inflater.decompress(message + b"\x00\x00\xff\xff")
                        if self.inflate_reset:
                            self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._packet(message, now)
            elif opcode == 0x9:  # websocket ping: pong
                self._send(payload, opcode=0xA)
            elif opcode == 0x8:
                self.close_reason = self.close_reason or "websocket close frame"
                if self.transport is not None:
                    self.transport.close()
                return

    def _send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        if n:
            key = (mask * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        self.transport.write(header + mask + payload)

    # Engine.IO / Socket.IO packets

    def _packet(self, packet: bytes, now: float) -> None:
        if packet == b"2":  # Engine.IO ping
            self._send(b"3")
            self.group.pings += 1
        elif packet.startswith(b"42"):  # an event on "/"
            self.events.append((now, packet))
            self.received += 1
            self.group.arrived(self)
        elif packet.startswith(b"40"):
            if not self.ready.done():
                self.live = True
                self.group.sockets.add(self)
                self.ready.set_result(None)
        elif packet.startswith(b"44"):
            self._fail("refused: " + _refusal(packet))
        elif packet.startswith(b"0"):  # Engine.IO open: connect to "/" with the auth payload
            self._send(b"40" + self.auth)
        elif packet.startswith(b"41") or packet == b"1":
            self.close_reason = "socket.io disconnect" if packet.startswith(b"41") else "engine.io close"
            if self.transport is not None:
                self.transport.close()

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(Refused(reason))
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _refusal(packet: bytes) -> str:
    try:
        body = json.loads(packet[2:])
        return str((body.get("data") or {}).get("code") or body.get("message"))[:60]
    except (ValueError, AttributeError):
        return packet[:60].decode(errors="replace")


class Group:
    """The sockets of one benchmark target inside one generator process."""

    def __init__(self) -> None:
        self.sockets: set[SioSocket] = set()
        self.closed = 0
        self.close_reasons: Counter[str] = Counter()
        self.first_close = 0.0
        self.pings = 0
        self.events = 0
        self._target = 0
        self._reached = asyncio.Event()
        self._waiting = False

    def arrived(self, sock: SioSocket) -> None:
        self.events += 1
        if self._waiting and self.events >= self._target:
            self._reached.set()

    async def wait(self, per_client: int, timeout: float, count: int | None = None) -> bool:
        self._target = count if count is not None else per_client * len(self.sockets)
        self._reached.clear()
        self._waiting = True
        try:
            if self.events < self._target:
                await asyncio.wait_for(self._reached.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiting = False

    def take_events(self) -> list[list[Any]]:
        out = []
        for sock in self.sockets:
            for at, raw in sock.events:
                try:
                    name, data = json.loads(raw[2:])[:2]
                except ValueError:
                    name, data = "?", raw.decode(errors="replace")
                out.append([at, name, data])
            sock.events = []
        self.events = 0
        return out


async def connect_one(group: Group, host: str, port: int, token: str, addr: str | None,
                      timeout: float, deflate: bool) -> None:
    loop = asyncio.get_running_loop()
    sock = SioSocket(group, host, port, {"token": token}, deflate)
    try:
        await asyncio.wait_for(loop.create_connection(lambda: sock, host, port,
                                                      local_addr=(addr, 0) if addr else None), timeout)
        await asyncio.wait_for(asyncio.shield(sock.ready), timeout)
    except BaseException:
        sock.close()
        raise


# --- the generator process -------------------------------------------------------------------


async def _connect_many(group: Group, cmd: dict[str, Any]) -> dict[str, Any]:
    tokens: list[str] = cmd["tokens"]
    addrs: list[str] = cmd.get("addrs") or [None]  # type: ignore[list-item]
    sem = asyncio.Semaphore(int(cmd.get("concurrency", 50)))
    errors: Counter[str] = Counter()
    started = time.monotonic()
    deadline = started + float(cmd.get("total_timeout", 600))

    async def one(i: int, token: str) -> bool:
        async with sem:
            if time.monotonic() > deadline:
                errors["total timeout"] += 1
                return False
            try:
                await connect_one(group, cmd["host"], int(cmd["port"]), token, addrs[i % len(addrs)],
                                  float(cmd.get("timeout", 30)), bool(cmd.get("deflate")))
                return True
            except TimeoutError:
                errors["timeout"] += 1
            except Refused as exc:
                errors[str(exc)] += 1
            except OSError as exc:
                errors[f"{type(exc).__name__}: {exc.strerror or exc}"[:80]] += 1
            except Exception as exc:
                errors[f"{type(exc).__name__}: {exc}"[:80]] += 1
            return False

    results = await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
    return {"ok": sum(results), "failed": len(results) - sum(results), "errors": dict(errors),
            "seconds": time.monotonic() - started}


async def _generator_main() -> None:
    raise_nofile()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    groups: dict[str, Group] = {}

    def answer(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        kind = cmd["cmd"]
        if kind == "exit":
            break
        group = groups.setdefault(cmd.get("group", ""), Group())
        if kind == "connect":
            answer(await _connect_many(group, cmd))
        elif kind == "wait":
            count = cmd.get("count")
            complete = await group.wait(int(cmd.get("per_client", 1)), float(cmd.get("timeout", 30)),
                                        None if count is None else int(count))
            answer({"events": group.events, "live": len(group.sockets), "complete": complete})
        elif kind == "take":
            answer({"events": group.take_events(), "live": len(group.sockets)})
        elif kind == "status":
            answer({"live": len(group.sockets), "closed": group.closed, "pings": group.pings,
                    "events": group.events, "close_reasons": dict(group.close_reasons),
                    "first_close": group.first_close,
                    "received": Counter(sock.received for sock in group.sockets)})
        elif kind == "close":
            n = len(group.sockets)
            for sock in list(group.sockets):
                sock.live = False
                sock.close()
            group.sockets.clear()
            await asyncio.sleep(0.2)
            answer({"closed": n})
        else:
            answer({"error": f"unknown command {kind!r}"})
    for group in groups.values():
        for sock in list(group.sockets):
            sock.close()


# --- driver side ---------------------------------------------------------------------------------


class Generator:
    """One generator process, driven from the benchmark through its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, command: Sequence[str] = (__file__, "--generate")) -> Generator:
        """This file's generator, or another script speaking the same JSON lines (`command`,
        run with this Python)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, limit=LINE_LIMIT)
        return cls(proc)

    async def ask(self, wait_s: float, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd, separators=(",", ":")).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), wait_s)
        if not line:
            raise RuntimeError(f"generator {self.proc.pid} exited ({self.proc.returncode})")
        return json.loads(line)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"cmd":"exit"}\n')
                await self.proc.stdin.drain()
                await asyncio.wait_for(self.proc.wait(), 20)
            except (TimeoutError, OSError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()


async def start_generators(n: int) -> list[Generator]:
    return list(await asyncio.gather(*(Generator.start() for _ in range(n))))


def generators_for(clients: int) -> int:
    return max(1, -(-clients // PER_GENERATOR))


def source_addrs(index: int) -> list[str]:
    """Loopback source addresses of generator `index` (spreads ephemeral ports)."""
    return [f"127.0.{index + 1}.{j}" for j in range(1, 5)]


async def connect_all(gens: list[Generator], group: str, port: int, tokens: list[str], *,
                      concurrency: int = 100, timeout: float = 30, deflate: bool = False) -> dict[str, Any]:
    """Split `tokens` (one per socket) over the generators and connect them all."""
    per = -(-len(tokens) // len(gens))
    each = max(1, concurrency // len(gens))
    started = time.monotonic()
    answers = await asyncio.gather(*(
        g.ask(900, cmd="connect", group=group, host="127.0.0.1", port=port, tokens=tokens[i * per:(i + 1) * per],
              addrs=source_addrs(i), concurrency=each, timeout=timeout, total_timeout=600, deflate=deflate)
        for i, g in enumerate(gens)))
    errors: Counter[str] = Counter()
    for a in answers:
        errors.update(a["errors"])
    return {"ok": sum(a["ok"] for a in answers), "failed": sum(a["failed"] for a in answers),
            "errors": dict(errors), "seconds": time.monotonic() - started}


async def status_all(gens: list[Generator], group: str) -> dict[str, Any]:
    answers = await asyncio.gather(*(g.ask(30, cmd="status", group=group) for g in gens))
    out: dict[str, Any] = {k: sum(a[k] for a in answers) for k in ("live", "closed", "pings", "events")}
    reasons: Counter[str] = Counter()
    for a in answers:
        reasons.update(a["close_reasons"])
    out["close_reasons"] = dict(reasons)
    out["first_close"] = min((a["first_close"] for a in answers if a["first_close"]), default=0.0)
    received: Counter[int] = Counter()
    for a in answers:
        received.update({int(k): n for k, n in a["received"].items()})
    out["received"] = dict(received)
    return out


async def close_all(gens: list[Generator], group: str) -> int:
    answers = await asyncio.gather(*(g.ask(120, cmd="close", group=group) for g in gens))
    return sum(a["closed"] for a in answers)


# --- the connection benchmarks' prologue ----------------------------------------------------------

SIGN_UP_SETTINGS = {"NAMELESS_RATE_LIMIT_AUTH": str(10**9), "NAMELESS_RATE_LIMIT_IP": str(10**9)}  # all from one IP


def add_common_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of socket_connections.py and socket_connect.py alike."""
    p.add_argument("--concurrency", type=int, default=100, help="handshakes in flight over all generators")
    p.add_argument("--signup-concurrency", type=int, default=8, help="sign-up requests in flight (default 8)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return p


def run_bench(args: argparse.Namespace, run: Callable[[argparse.Namespace], Awaitable[dict]]) -> dict | None:
    """A connection benchmark's process: with `--bare-server PORT` it is the bare server
    (None once stopped); else the open-files limit is raised and `run` measures."""
    if args.bare_server is not None:
        serve_bare_socketio(args.bare_server)
        return None
    raise_nofile()
    return asyncio.run(run(args))


def _answering(proc: subprocess.Popen, log: Path, port: int, path: str, name: str) -> tuple[subprocess.Popen, Path]:
    try:
        wait_until_answers(proc, port, path, name, log)
    except BaseException:
        stop(proc)
        raise
    return proc, log


def start_app_ready(port: int, tmp: Path, *, data_dir: Path | None = None, **settings: str
                    ) -> tuple[subprocess.Popen, Path]:
    """`run.py` on `port` with the sign-up rate limits raised, once it answers /readyz."""
    return _answering(*start_app(port, tmp, data_dir=data_dir, **SIGN_UP_SETTINGS, **settings), port, "/readyz",
                      "run.py")


def start_bare_ready(script: str, port: int, tmp: Path) -> tuple[subprocess.Popen, Path]:
    """`script --bare-server PORT` (run_bench serves serve_bare_socketio), once it answers."""
    return _answering(*start_script(script, ["--bare-server", str(port)], tmp, "bare"), port, "/healthz",
                      "bare socketio")


async def sign_up(port: int, users: int, concurrency: int) -> tuple[list[str], dict]:
    """Sign up `users` accounts through the API; returns their access tokens."""
    import httpx  # the driver's only: generator processes never load it

    tokens: list[str] = []
    failures: dict[str, int] = {}
    sem = asyncio.Semaphore(concurrency)
    run = secrets.token_hex(4)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as api:
        async def one(i: int) -> None:
            async with sem:
                try:
                    resp = await api.post("/api/v1/auth/signup", json={
                        "email": f"bench-{run}-{i}@example.com", "display_name": f"Bench {i}",
                        "password": f"bench {secrets.token_urlsafe(12)} sockets"})
                    if resp.status_code == 201:
                        tokens.append(resp.json()["access_token"])
                        return
                    key = f"HTTP {resp.status_code}"
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                failures[key] = failures.get(key, 0) + 1

        await asyncio.gather(*(one(i) for i in range(users)))
    return tokens, {"users": len(tokens), "failures": failures, "seconds": time.monotonic() - started}


# --- the bare baseline server -------------------------------------------------------------------


def serve_bare_socketio(port: int, routes: Callable[[Any], list] | None = None, rooms: Sequence[str] = ()) -> None:
    """python-socketio on Tornado accepting every connection on "/" (and putting it in `rooms`),
    with /healthz and the Tornado rules `routes(sio)`; runs in its own process."""
    import socketio
    import tornado.web

    raise_nofile()
    sio = socketio.AsyncServer(async_mode="tornado", logger=False, engineio_logger=False)

    @sio.event
    async def connect(sid: str, environ: dict, auth: object = None) -> bool:
        for room in rooms:
            await sio.enter_room(sid, room)
        return True

    class Health(tornado.web.RequestHandler):
        def get(self) -> None:
            self.finish({"status": "ok"})

    run_tornado(port, [(r"/healthz", Health), (r"/socket\.io/", socketio.get_tornado_handler(sio)),
                       *(routes(sio) if routes else [])])


if __name__ == "__main__":
    if sys.argv[1:] == ["--generate"]:
        asyncio.run(_generator_main())
    else:
        sys.exit(__doc__)
