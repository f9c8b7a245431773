"""nx-27017 served on a Unix socket instead of a loopback TCP port.

nx-27017 0.8.1 has no authentication and listens only on TCP, where every local user may
connect. Its request handler is served here on a socket file inside a 0700 directory, so
only the owner of the data dir reaches the database; the umask keeps the files 0600.

Run as a script by `storage.embedded_mongo`: `python nx_unix.py --data-dir D --socket S ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path


async def _serve(args: argparse.Namespace) -> None:
    from nx_27017.handler import NeoSQLiteHandler
    from nx_27017.server import handle_client

    handler = NeoSQLiteHandler(data_dir=args.data_dir, journal_mode="WAL")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.socket)
    server = await asyncio.start_unix_server(lambda r, w: handle_client(r, w, handler), path=args.socket)
    os.chmod(args.socket, 0o600)
    Path(args.pid_file).write_text(str(os.getpid()))  # noqa: ASYNC240 - once, before serving
    try:
        async with server:
            await stop.wait()
    finally:
        handler.close_all()
        for path in (args.pid_file, args.socket):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(prog="nx-27017-unix")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--log-file", required=True)
    parser.add_argument("--pid-file", required=True)
    args = parser.parse_args()
    os.umask(0o077)
    logging.basicConfig(filename=args.log_file, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s [%(process)d] %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
