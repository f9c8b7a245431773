"""Start the Nameless server (and the embedded defaults it needs), or run an admin command.

    python run.py [--host H] [--port P] [--data-dir DIR]    serve
    python run.py --help                                    options and environment
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from config import Settings, SettingsError, load_settings
from config.settings import describe_variables

log = logging.getLogger("nameless")


def _parser() -> argparse.ArgumentParser:
    rows = "\n".join(f"  {name:<28} {desc}" + (f" (default: {default})" if default else "")
                     for name, default, desc in describe_variables())
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Nameless streaming backend: REST, Socket.IO and signed HLS playback.",
        epilog="environment variables (also read from .env):\n" + rows,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="address to listen on (NAMELESS_HOST)")
    parser.add_argument("--port", type=int, help="TCP port, 0 for any free one (NAMELESS_PORT)")
    parser.add_argument("--data-dir", type=Path, help="where embedded data lives (NAMELESS_DATA_DIR)")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.add_parser("serve", help="serve HTTP and Socket.IO (the default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(host=args.host, port=args.port, data_dir=args.data_dir)
    except SettingsError as exc:
        print(f"run.py: invalid setting: {exc}", file=sys.stderr)
        return 2
    from server.logs import configure_logging

    configure_logging(settings.log_level)
    return asyncio.run(serve(settings))


async def serve(settings: Settings) -> int:
    from server.runtime import Runtime

    runtime = Runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start()
    except Exception as exc:
        log.error("start failed", extra={"reason": str(exc)})
        await runtime.stop()
        return 1
    await stop.wait()
    await runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
