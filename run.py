"""Start the Nameless server (and the embedded defaults it needs), or run an admin command.

    python run.py [--host H] [--port P] [--data-dir DIR]    serve
    python run.py createsuperuser [--email E --password P]  create the first super admin
    python run.py set-password --email E                    new password (NAMELESS_NEW_PASSWORD or prompt)
    python run.py demo                                      demo catalog, playable clips, demo viewer
    python run.py --help                                    options and environment
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys
from pathlib import Path

from config import Settings, SettingsError, load_settings
from config.settings import describe_variables

log = logging.getLogger("nameless")


def _parser() -> argparse.ArgumentParser:
    rows = "\n".join(f"  {name:<28} {desc}" + (f" (default: {default})" if default else "")
                     for name, default, desc in describe_variables())
    # The global options, accepted before or after the command (`run.py demo --data-dir X`):
    # one parent for the top level, one for the commands whose SUPPRESS default keeps a
    # command's parser from resetting what was given before it.
    top, common = (argparse.ArgumentParser(add_help=False, argument_default=default)
                   for default in (None, argparse.SUPPRESS))
    for options in (top, common):
        options.add_argument("--host", help="address to listen on (NAMELESS_HOST)")
        options.add_argument("--port", type=int, help="TCP port, 0 for any free one (NAMELESS_PORT)")
        options.add_argument("--data-dir", type=Path, help="where embedded data lives (NAMELESS_DATA_DIR)")
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Nameless streaming backend: REST, Socket.IO and signed HLS playback.",
        epilog="environment variables (also read from .env):\n" + rows,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[top],
    )
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.add_parser("serve", help="serve HTTP and Socket.IO (the default)", parents=[common])
    su = sub.add_parser("createsuperuser", help="create a super admin (asks for what flags omit)", parents=[common])
    su.add_argument("--email")
    su.add_argument("--password", help="prefer the prompt or NAMELESS_SUPERUSER_PASSWORD: flags show up in ps")
    su.add_argument("--display-name", default="Administrator")
    pw = sub.add_parser("set-password", parents=[common],
                        help="set an account's password and end its sessions (NAMELESS_NEW_PASSWORD or a prompt)")
    pw.add_argument("--email", required=True)
    demo = sub.add_parser("demo", help="load the demo catalog, a few playable clips and a demo viewer",
                          parents=[common])
    demo.add_argument("--clips", type=int, default=3,
                      help="clips transcoded, shared by every demo movie and episode (default 3)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(host=args.host, port=args.port, data_dir=args.data_dir)
    except SettingsError as exc:
        print(f"run.py: invalid setting: {exc}", file=sys.stderr)
        return 2
    from server.core.logs import configure_logging

    configure_logging(settings.log_level)
    if args.command == "createsuperuser":
        return asyncio.run(create_superuser(settings, args))
    if args.command == "set-password":
        return asyncio.run(set_password(settings, args.email))
    if args.command == "demo":
        return asyncio.run(load_demo(settings, args.clips))
    return asyncio.run(serve(settings))


async def create_superuser(settings: Settings, args: argparse.Namespace) -> int:
    from server.app.runtime import Runtime
    from server.core import errors
    from server.core.permissions import Role

    email = args.email or (await asyncio.to_thread(input, "Email: ")).strip()
    password = args.password or os.environ.get("NAMELESS_SUPERUSER_PASSWORD")
    if not password:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            print("run.py: the passwords differ", file=sys.stderr)
            return 2
    runtime = Runtime(settings)
    await runtime.start(serve_http=False)
    try:
        assert runtime.services is not None
        user = await runtime.services.accounts.create_user(
            email, args.display_name, password=password,
            roles=[Role.SUPER_ADMIN.value, Role.VIEWER.value], email_verified=True,
        )
        await runtime.services.audit.record(None, "staff.createsuperuser", target_type="user",
                                            target_id=str(user["_id"]), ip="cli")
    except errors.ApiError as exc:
        print(f"run.py: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await runtime.stop()
    print(f"created super admin {user['email']} ({user['_id']})")
    return 0


async def set_password(settings: Settings, email: str) -> int:
    from server.app.commands import set_password as reset
    from server.app.runtime import Runtime
    from server.core import errors

    password = os.environ.get("NAMELESS_NEW_PASSWORD")
    if not password:
        password = getpass.getpass("New password: ")
        if getpass.getpass("New password (again): ") != password:
            print("run.py: the passwords differ", file=sys.stderr)
            return 2
    runtime = Runtime(settings)
    await runtime.start(serve_http=False)
    try:
        assert runtime.services is not None and runtime.platform is not None
        await reset(runtime.services, runtime.platform, email, password)
    except errors.ApiError as exc:
        print(f"run.py: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await runtime.stop()
    print(f"password set for {email}; its signed-in sessions ended")
    return 0


async def serve(settings: Settings) -> int:
    from server.app.runtime import Runtime

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
    tune_process()
    await stop.wait()
    await runtime.stop()
    return 0


GC_GEN0_THRESHOLD = 20_000


def tune_process() -> None:
    """Open files up to the hard limit (each socket is one) and a garbage collector that
    does not walk the start-up heap during fan-outs; docs/realtime.md explains both."""
    import gc
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log.info("open files limit", extra={"before": soft, "now": resource.getrlimit(resource.RLIMIT_NOFILE)[0]})
    gc.collect()
    gc.freeze()  # modules, routes, the catalog copy: never garbage, never scanned again
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def load_demo(settings: Settings, clips: int) -> int:
    from server.app.demo.catalog import load_demo as load_catalog
    from server.app.demo.media import load_demo_media
    from server.app.runtime import Runtime

    runtime = Runtime(settings)
    await runtime.start(serve_http=False)
    try:
        assert runtime.services is not None
        await runtime.services.plans.seed_defaults()
        catalog = await load_catalog(runtime.services, clips=clips)
        media = await load_demo_media(runtime.services)
    finally:
        await runtime.stop()
    print(f"demo catalog: {catalog}")
    if media["password"]:
        print(f"demo viewer: {media['viewer']} / {media['password']} (shown once; set another with "
              f"`run.py set-password --email {media['viewer']}`)")
    else:
        print(f"demo viewer: {media['viewer']} (made earlier; forgot the password? "
              f"`run.py set-password --email {media['viewer']}`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
