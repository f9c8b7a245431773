"""CPU per keep-alive GET through the app's HTTP edge against bare Tornado, in one process, without sockets.

    .venv/bin/python bench/edge_cpu.py [--requests 20000] [--rounds 5] [--path /healthz] [--connections 10]

The socket benchmark (bench/healthz.py) moves with whatever else runs on the machine; this
one measures only CPU time of the serving code: Tornado's own HTTP/1 connection reads
each request from a stand-in stream that hands over the request's bytes at once and
accepts every write, so what is left is the parsing, routing, handler, headers, logging
and metrics of both servers, and no system call but the log's writes. The app is the
real one (`Runtime`, embedded database, logging as `run.py` configures it, into a file
in a scratch dir); the bare server answers the same small JSON as in bench/healthz.py.
Rounds alternate; each figure is the median.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import tornado.ioloop
import tornado.web
from harness import ROOT, scratch_dir
from tornado import httputil
from tornado.http1connection import HTTP1ConnectionParameters, HTTP1ServerConnection

sys.path.insert(0, str(ROOT))

REQUEST = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
PARAMS = HTTP1ConnectionParameters(decompress=False, chunk_size=65536, max_header_size=65536, header_timeout=None,
                                   max_body_size=10**8, body_timeout=None, no_keep_alive=False)


class _Context:
    """What `HTTPServer` gives a connection: the peer's address and scheme."""

    def __init__(self) -> None:
        self.remote_ip, self.protocol, self.address = "127.0.0.1", "http", ("127.0.0.1", 40000)
        self._orig_remote_ip, self._orig_protocol = self.remote_ip, self.protocol

    def __str__(self) -> str:
        return self.remote_ip


class _Stream:
    """The part of `IOStream` an HTTP/1 server connection uses: `count` requests, each
    read at once, every write done at once; `done` is set when the last is answered."""

    def __init__(self, request: bytes, count: int, done: asyncio.Future[None]) -> None:
        self.io_loop = tornado.ioloop.IOLoop.current()
        self.max_buffer_size = 100 * 1024 * 1024
        self.error: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._request, self._left, self._done = request, count, done

    def _ready(self, value: Any) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        future.set_result(value)
        return future

    def read_until_regex(self, regex: bytes, max_bytes: int | None = None) -> asyncio.Future[bytes]:
        if self._left == 0:
            if not self._done.done():
                self._done.set_result(None)
            return self._loop.create_future()  # the client waits: the connection idles
        self._left -= 1
        return self._ready(self._request)

    def write(self, data: bytes) -> asyncio.Future[None]:
        return self._ready(None)

    def closed(self) -> bool:
        return False

    def set_close_callback(self, callback: Any) -> None:
        pass

    def set_nodelay(self, value: bool) -> None:
        pass

    def close(self, exc_info: bool = False) -> None:
        pass


async def serve(delegate: httputil.HTTPServerConnectionDelegate, path: str, requests: int, connections: int) -> float:
    """CPU microseconds per request for `requests` GETs of `path` over `connections`."""
    loop = asyncio.get_running_loop()
    request = REQUEST % path.encode()

    async def run(count: int) -> None:
        dones = [loop.create_future() for _ in range(connections)]
        for done in dones:
            stream = _Stream(request, count // connections, done)
            HTTP1ServerConnection(stream, PARAMS, _Context()).start_serving(delegate)
        await asyncio.gather(*dones)

    await run(2000)  # warm-up
    started = time.process_time()
    await run(requests)
    return (time.process_time() - started) / (requests // connections * connections) * 1e6


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(b'{"status":"ok"}')


async def measure(args: argparse.Namespace, tmp: Path, log: TextIO) -> dict[str, list[float]]:
    from config import load_settings
    from server.app.forwarded import ResolveClient
    from server.app.runtime import Runtime
    from server.core.logs import configure_logging

    settings = load_settings({"NAMELESS_HOST": "127.0.0.1", "NAMELESS_PORT": "0",
                              "NAMELESS_DATA_DIR": str(tmp / "data"), "NAMELESS_SECRET_KEY": "bench-" + "x" * 32,
                              "NAMELESS_LOG_LEVEL": "INFO", "NAMELESS_RATE_LIMIT_IP": str(10**9)})
    configure_logging("INFO", stream=log)
    runtime = Runtime(settings)
    await runtime.start()
    assert runtime.app is not None
    app = ResolveClient(runtime.app, settings)
    bare = tornado.web.Application([(r"/healthz", Hello)])
    runs: dict[str, list[float]] = {"bare": [], "app": []}
    try:
        for _ in range(args.rounds):
            runs["bare"].append(await serve(bare, "/healthz", args.requests, args.connections))
            runs["app"].append(await serve(app, args.path, args.requests, args.connections))
    finally:
        await runtime.stop()
    return runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20000, help="requests per server per round (default 20000)")
    p.add_argument("--rounds", type=int, default=5, help="alternated bare/app rounds (default 5)")
    p.add_argument("--connections", type=int, default=10, help="keep-alive connections served at once (default 10)")
    p.add_argument("--path", default="/healthz", help="the app's path (default /healthz; the bare one is always it)")
    args = p.parse_args()
    with scratch_dir() as tmp, (tmp / "app.log").open("w") as log:
        runs = asyncio.run(measure(args, tmp, log))
        for handler in logging.getLogger().handlers[:]:  # the lines of the last loop turn, then no more
            handler.flush()
            logging.getLogger().removeHandler(handler)
    median = {name: sorted(values)[len(values) // 2] for name, values in runs.items()}
    print(f"GET {args.path}: {args.requests} requests x {args.rounds} alternated rounds,"
          f" {args.connections} connections")
    for name in ("bare", "app"):
        print(f"{name:5} {median[name]:6.1f} us CPU a request   (rounds: {', '.join(f'{v:.1f}' for v in runs[name])})")
    print(f"app - bare {median['app'] - median['bare']:.1f} us; bare/app {median['bare'] / median['app']:.3f}"
          " (the app's req/s over bare Tornado's at equal CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
