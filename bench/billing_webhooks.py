"""A Stripe webhook storm: every event delivered twice, shuffled, from two sender processes
at once into two `run.py` processes on one database, against a Stripe stand-in
(localstripe plus tests/fakes/stripe.py); the baseline, measured in the same run, replays
each event once, serially, into one process.

    .venv/bin/python bench/billing_webhooks.py [--events 1000] [--subscriptions 50] [--connections 8]

Setup goes through the API and Stripe: `--subscriptions` viewers each check out and pay,
then Stripe moves each subscription to one of four ends (renewed, past_due after a failed
renewal, cancel at period end, ended). Along the way the bench keeps `--events / 2`
distinct events naming those objects (checkout completed, subscription created, updated
and deleted, invoice paid, failed and finalized), many carrying stale snapshots.

Baseline: one client posts each distinct event once, in setup order, into process A. The
webhook state (subscriptions, events, invoices, messages) is then emptied and the storm
runs from the same start: two sender processes each post every event, in their own
shuffled order, `--connections` at a time, sender 1 into A and sender 2 into B. A
delivery answered 409 `event_in_progress` (the other copy is mid-apply) is sent again
after the rest, as Stripe retries it later.

Both runs are checked: each distinct event applied exactly once (exactly one delivery
answered `duplicate: false`) and every account's subscription equal to Stripe's final
state (status and cancel_at_period_end). It prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from harness import (
    ROOT,
    clean_env,
    free_port,
    load_average,
    scratch_dir,
    start_app,
    start_script,
    stop,
    wait_until_answers,
)

PASSWORD = "correct horse battery staple for the bench"  # noqa: S105 (bench accounts on loopback)
RECORD_STATUS = {"trialing": "trialing", "active": "active", "past_due": "past_due", "canceled": "canceled",
                 "incomplete": "none", "unpaid": "canceled", "incomplete_expired": "canceled", "paused": "canceled"}


# --- the senders (processes of their own) --------------------------------------------------------


async def send_all(port: int, events: list[dict[str, Any]], connections: int, seed: int | None) -> dict[str, Any]:
    """Post every event (shuffled unless `seed` is None); a 409 goes to the back of the queue."""
    from tests.fakes.stripe import WEBHOOK_SECRET, sign

    order = list(events)
    if seed is not None:
        random.Random(seed).shuffle(order)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for evt in order:
        queue.put_nowait(evt)
    applied: list[str] = []
    statuses: dict[int, int] = {}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            evt = queue.get_nowait()
            payload = json.dumps(evt).encode()
            resp = await client.post(f"http://127.0.0.1:{port}/webhooks/stripe", content=payload,
                                     headers={"Stripe-Signature": sign(payload, WEBHOOK_SECRET),
                                              "Content-Type": "application/json"})
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            if resp.status_code == 200 and resp.json().get("duplicate") is False:
                applied.append(evt["id"])
            elif resp.status_code in (409, 503):
                queue.put_nowait(evt)
                await asyncio.sleep(0.05)  # Stripe's retry comes later

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    return {"applied": applied, "statuses": statuses}


def sender_main(args: argparse.Namespace) -> None:
    events = json.loads(Path(args.events_file).read_text())
    wait_for_file(Path(args.go_file))
    result = asyncio.run(send_all(args.port, events, args.connections, args.seed))
    Path(args.out).write_text(json.dumps(result))


def wait_for_file(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(f"no {path} within {timeout:.0f}s")
        time.sleep(0.005)


# --- setup and checks (this process) ------------------------------------------------------------


def evt(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    from tests.fakes.stripe import event

    return event(event_type, obj)


async def setup(base: str, stripe: Any, subscriptions: int, distinct: int) -> tuple[list[dict], list[dict]]:
    """Viewers with paid subscriptions moved to their ends; the events that tell of it."""
    events: list[dict[str, Any]] = []
    users: list[dict[str, Any]] = []
    stale: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for i in range(subscriptions):
            email = f"storm-{i}-{time.time_ns()}@example.com"
            signed = await client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD,
                                                                    "display_name": f"storm{i}"})
            assert signed.status_code == 201, signed.text
            headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
            started = await client.post("/api/v1/billing/checkout", json={"plan_id": "standard"}, headers=headers)
            assert started.status_code == 200, started.text
            session = await stripe.complete_checkout(started.json()["session_id"])
            sub_id = session["subscription"]
            first = await stripe.ls("GET", f"/v1/subscriptions/{sub_id}")
            events += [evt("checkout.session.completed", session), evt("customer.subscription.created", first)]
            stale.append(first)
            end = i % 4
            if end == 0:
                renewal = await stripe.charge_renewal(sub_id)
                events += [evt("invoice.finalized", renewal), evt("invoice.paid", renewal)]
            elif end == 1:
                failed = await stripe.fail_renewal(sub_id)
                events += [evt("invoice.payment_failed", failed)]
            elif end == 2:
                await stripe.ls("POST", f"/v1/subscriptions/{sub_id}", {"cancel_at_period_end": True})
            else:
                ended = await stripe.ls("DELETE", f"/v1/subscriptions/{sub_id}")
                events += [evt("customer.subscription.deleted", ended)]
            now = await stripe.ls("GET", f"/v1/subscriptions/{sub_id}")
            events.append(evt("customer.subscription.updated", now))
            users.append({"headers": headers, "subscription": sub_id})
    while len(events) < distinct:  # more deliveries of the stale first snapshots, as new events
        events.append(evt("customer.subscription.updated", random.choice(stale)))
    return users, events


async def check(base: str, stripe: Any, users: list[dict[str, Any]]) -> int:
    wrong = 0
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for user in users:
            mine = (await client.get("/api/v1/me/subscription", headers=user["headers"])).json()
            truth = await stripe.ls("GET", f"/v1/subscriptions/{user['subscription']}")
            want = (RECORD_STATUS[truth["status"]], bool(truth["cancel_at_period_end"]))
            if (mine["status"], mine["cancel_at_period_end"]) != want:
                wrong += 1
                print(f"  wrong: {user['subscription']} has {mine['status']}/{mine['cancel_at_period_end']}, "
                      f"Stripe says {want}", file=sys.stderr)
    return wrong


WEBHOOK_STATE = ("subscriptions", "billing_events", "billing_invoices", "notifications", "outbox")


def tally(results: list[dict[str, Any]], events: list[dict[str, Any]]) -> tuple[bool, int, dict[str, int]]:
    applied = [i for r in results for i in r["applied"]]
    statuses: dict[str, int] = {}
    for r in results:
        for code, count in r["statuses"].items():
            statuses[str(code)] = statuses.get(str(code), 0) + count
    once = len(applied) == len(set(applied)) == len(events)
    return once, len(applied), statuses


async def storm(args: argparse.Namespace) -> int:
    from pymongo import AsyncMongoClient

    from storage.embedded_mongo import EmbeddedMongo
    from tests.fakes.stripe import running_stripe

    distinct = args.events // 2
    load_start = load_average()
    with scratch_dir() as tmp:
        mongo = EmbeddedMongo(tmp / "mongo")
        mongo_url = await asyncio.to_thread(mongo.start)
        db_name = f"bench_{time.time_ns()}"
        apps: list[tuple[Any, Path]] = []
        senders = []
        try:
            async with running_stripe() as stripe:
                ports = [free_port(), free_port()]
                for name, port in zip(("a", "b"), ports, strict=True):
                    apps.append(start_app(port, tmp, name, **stripe.env(), MONGO_URL=mongo_url,
                                          NAMELESS_MONGO_DB=db_name, NAMELESS_SECRET_KEY="bench-" + "s" * 40,
                                          NAMELESS_RATE_LIMIT_IP="1000000", NAMELESS_RATE_LIMIT_AUTH="100000",
                                          NAMELESS_LOG_LEVEL="WARNING"))
                for (proc, log), port, name in zip(apps, ports, ("A", "B"), strict=True):
                    await asyncio.to_thread(wait_until_answers, proc, port, "/readyz", f"run.py {name}", log, 180)
                base = f"http://127.0.0.1:{ports[0]}"
                users, events = await setup(base, stripe, args.subscriptions, distinct)

                started = time.perf_counter()
                baseline = await send_all(ports[0], events, 1, None)
                replay_took = time.perf_counter() - started
                replay_once, replay_applied, replay_statuses = tally([baseline], events)
                replay_wrong = await check(base, stripe, users)

                db = AsyncMongoClient(mongo_url)[db_name]
                for name in WEBHOOK_STATE:
                    await db[name].delete_many({})
                await db.client.close()

                events_file, go = tmp / "events.json", tmp / "go"
                events_file.write_text(json.dumps(events))
                for n, port in zip((1, 2), ports, strict=True):
                    senders.append(start_script(__file__, [
                        "--send", "--port", str(port), "--events-file", str(events_file), "--go-file", str(go),
                        "--out", str(tmp / f"sent{n}.json"), "--seed", str(n), "--connections",
                        str(args.connections)], tmp, f"sender{n}",
                        env=clean_env(PYTHONPATH=f"{ROOT}:{ROOT / 'bench'}")))
                await asyncio.sleep(1.0)  # both interpreters up and waiting on the go file
                started = time.perf_counter()
                go.write_text("go")
                for proc, sender_log in senders:
                    code = await asyncio.to_thread(proc.wait, 600)
                    if code != 0:
                        sys.exit(f"sender failed:\n{sender_log.read_text()[-2000:]}")
                took = time.perf_counter() - started
                results = [json.loads((tmp / f"sent{n}.json").read_text()) for n in (1, 2)]
                once, applied, statuses = tally(results, events)
                wrong = await check(base, stripe, users)
                print(f"billing webhook storm: {len(events)} distinct events, {args.subscriptions} subscriptions; "
                      f"load average {load_start}-{load_average()}")
                print(f"  baseline, each event once, serially into one run.py: {replay_took:.2f} s "
                      f"({len(events) / replay_took:.0f} deliveries/s); HTTP statuses {replay_statuses}")
                print(f"    applied exactly once each: {replay_once} ({replay_applied} applied); "
                      f"subscriptions equal to Stripe's final state: {len(users) - replay_wrong}/{len(users)}")
                print(f"  storm, each event twice, shuffled, 2 senders x {args.connections} connections into "
                      f"2 run.py: {took:.2f} s ({sum(statuses.values()) / took:.0f} deliveries/s); "
                      f"HTTP statuses {statuses}")
                print(f"    applied exactly once each: {once} ({applied} applied); "
                      f"subscriptions equal to Stripe's final state: {len(users) - wrong}/{len(users)}")
                print(f"  storm / baseline: {took / replay_took:.2f}x the time for twice the deliveries")
                ok = once and replay_once and wrong == 0 and replay_wrong == 0
                return 0 if ok else 1
        finally:
            for proc, _ in senders:
                stop(proc)
            for (proc, log), name in zip(apps, ("A", "B"), strict=False):
                stop(proc, name=f"run.py {name}", log=log)
            await asyncio.to_thread(mongo.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000, help="deliveries in all (each event twice)")
    parser.add_argument("--subscriptions", type=int, default=50)
    parser.add_argument("--connections", type=int, default=8, help="concurrent posts per sender process")
    parser.add_argument("--send", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--events-file", help=argparse.SUPPRESS)
    parser.add_argument("--go-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.send:
        sender_main(args)
        return
    sys.exit(asyncio.run(storm(args)))


if __name__ == "__main__":
    main()
