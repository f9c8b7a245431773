"""Push delivery through the outbox against the FCM stand-in (tests/fakes/messaging.py, in a
process of its own), with the baseline of firebase-admin alone against the same stand-in in
the same run.

    .venv/bin/python bench/notifications_delivery.py [--pushes 2000] [--followers 10000]

1. throughput: `--pushes` notifications (one device each) queued at once through the
   notification service; the in-process delivery worker claims, sends and records them.
   Measured from the first enqueue to the stand-in accepting the last push, as pushes per
   second; baseline: the same number of messages sent by `messaging.send_each_async` in
   chunks of 500 (no database, no outbox), as pushes per second. Ratio = outbox / baseline.
2. release: an episode released to `--followers` accounts (each with one phone, having
   watched the series): the time from the release event to the stand-in accepting the
   last of their pushes (fan-out job, inbox, outbox, worker, FCM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
from harness import ROOT, clean_env, load_average_line, ratio_line, scratch_dir, start_script, stop

sys.path.insert(0, str(ROOT))


def serve_fakes(url_file: str) -> None:
    """The stand-in process: serves until killed."""
    from tests.fakes.messaging import start_fakes

    fakes, _ = start_fakes()
    Path(url_file + ".key").write_text(json.dumps(fakes.service_account()))
    Path(url_file).write_text(fakes.url)
    while True:
        time.sleep(3600)


async def accepted(client: httpx.AsyncClient) -> dict:
    return (await client.get("/stats")).json()


async def wait_for(client: httpx.AsyncClient, count: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = await accepted(client)
        if stats["pushes"] >= count:
            return stats
        await asyncio.sleep(0.05)
    raise SystemExit(f"the stand-in accepted {stats['pushes']} of {count} pushes in {timeout:.0f}s")


async def baseline(key_file: str, url: str, n: int, client: httpx.AsyncClient) -> float:
    from firebase_admin import messaging

    from server.notifications.push import FirebasePush

    push = FirebasePush(key_file, endpoint=url, timeout_s=30)  # only to point the app at the stand-in
    await push.send([])
    before = (await accepted(client))["pushes"]
    start = time.monotonic()
    for first in range(0, n, 500):
        batch = [messaging.Message(token=f"base-{i}", notification=messaging.Notification(title="t", body="b"))
                 for i in range(first, min(n, first + 500))]
        await messaging.send_each_async(batch, app=push._app)
    stats = await wait_for(client, before + n, 600)
    await push.close()
    return n / (time.monotonic() - start) if stats else 0.0


async def main(args: argparse.Namespace, url: str, key_file: str, tmp: Path) -> None:
    from bson import ObjectId

    from config import load_settings
    from server.app.runtime import Runtime
    from server.catalog.releases import ContentReleased
    from server.core.clock import now, to_ms

    settings = load_settings({"NAMELESS_HOST": "127.0.0.1", "NAMELESS_PORT": "0",
                              "NAMELESS_DATA_DIR": str(tmp / "data"), "NAMELESS_LOG_LEVEL": "WARNING",
                              "FIREBASE_CREDENTIALS_FILE": key_file,
                              "NAMELESS_FCM_ENDPOINT": url, "NAMELESS_PROVIDER_TIMEOUT_S": "30"}, env_file=None)
    runtime = Runtime(settings)
    await runtime.start()
    db, services = runtime.platform.db, runtime.services
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        base_rate = await baseline(key_file, url, args.pushes, client)

        users = [str(ObjectId()) for _ in range(args.pushes)]
        at = to_ms(now())
        await db.devices.insert_many([{"_id": f"tp-{u}", "user_id": u, "platform": "android", "registered_ms": at,
                                       "updated_ms": at} for u in users])
        before = (await accepted(client))["pushes"]
        start = time.time()
        for first in range(0, len(users), 1000):
            await services.notifications.notify_many(users[first:first + 1000], "support", "Reply", "We answered")
        stats = await wait_for(client, before + args.pushes, 900)
        outbox_rate = args.pushes / (stats["last_wall"] - start)

        title_id = str(ObjectId())
        followers = [str(ObjectId()) for _ in range(args.followers)]
        await db.title_progress.insert_many([
            {"_id": f"p{u}:{title_id}", "profile_id": f"p{u}", "user_id": u, "title_id": title_id,
             "state": "watching", "last_watched_ms": at} for u in followers])
        await db.devices.insert_many([{"_id": f"tr-{u}", "user_id": u, "platform": "ios", "registered_ms": at,
                                       "updated_ms": at} for u in followers])
        before = (await accepted(client))["pushes"]
        start = time.time()
        await services.releases.emit(ContentReleased(kind="episode", title_id=title_id, title="Bench",
                                                     released_ms=at, episode_id=str(ObjectId()), season=1,
                                                     episode=2, episode_name="Again"))
        stats = await wait_for(client, before + args.followers, 900)
        release_s = stats["last_wall"] - start
    await runtime.stop()

    print(f"pushes through the outbox: {outbox_rate:8.1f} /s   ({args.pushes} pushes, one device each)")
    print(f"firebase-admin alone:      {base_rate:8.1f} /s   (send_each_async, chunks of 500, same stand-in)")
    print(ratio_line("outbox / firebase-admin alone", {"pushes/s": outbox_rate / base_rate}))
    print(f"release to the last of {args.followers} followers' pushes accepted: {release_s:.1f} s "
          f"({args.followers / release_s:.0f} followers/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--followers", type=int, default=10_000)
    parser.add_argument("--serve-fakes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fakes:
        serve_fakes(args.serve_fakes)
    load_start = os.getloadavg()
    with scratch_dir() as tmp:
        url_file = tmp / "fakes.url"
        proc, log = start_script(__file__, ["--serve-fakes", str(url_file)], tmp, "fakes",
                                 env=clean_env(PYTHONPATH=str(ROOT)))
        try:
            deadline = time.monotonic() + 30
            while not url_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            asyncio.run(main(args, url_file.read_text(), str(url_file) + ".key", tmp))
        finally:
            stop(proc, name="fakes", log=log)
    print(load_average_line(load_start, os.getloadavg()))
