"""Webhook events survive the process applying them: a real `run.py` gets SIGKILL while it
is applying an event (Stripe is slow at that moment, held at the stand-in), a second
`run.py` starts on the same data, and Stripe's next delivery applies the event once, as
attempt 2. Then what an attempt killed after writing a change but before its messages
leaves behind: the next attempt sends those messages, once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx
from pymongo import AsyncMongoClient

from server.core.clock import now, to_ms
from tests.billing.test_payments import billing_emails, deliver, ended_by_stripe, mine, subscribe
from tests.fakes.stripe import event
from tests.helpers import eventually, signup
from tests.platform import test_process

launch = test_process.launch  # starts run.py processes, each leading its own process group


async def test_a_process_killed_mid_apply_leaves_the_event_to_the_next(launch, mongo_url: str, tmp_path: Path,
                                                                       stripe_fake) -> None:
    stripe = stripe_fake
    db_name = f"test_{uuid.uuid4().hex[:12]}"
    env = {**stripe.env(), "MONGO_URL": mongo_url, "NAMELESS_MONGO_DB": db_name,
           "NAMELESS_SECRET_KEY": "crash-test-" + "c" * 32, "NAMELESS_STRIPE_EVENT_LEASE": "5",
           "NAMELESS_LOG_LEVEL": "WARNING"}
    data_dir = tmp_path / "data"
    first = launch(data_dir, **env)
    await asyncio.to_thread(first.wait_ready)
    mongo: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = mongo[db_name]
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            served = SimpleNamespace(client=client)
            viewer = await signup(client)
            sub_id = await subscribe(served, stripe, viewer)
        ended = await stripe.ls("DELETE", f"/v1/subscriptions/{sub_id}")
        evt = event("customer.subscription.deleted", ended)
        path = f"/v1/subscriptions/{sub_id}"
        gate = stripe.hold(path)
        async with httpx.AsyncClient(base_url=first.url, timeout=60) as client:
            doomed = asyncio.create_task(deliver(SimpleNamespace(client=client), evt))
            await eventually(lambda: path in stripe.waiting)
            os.killpg(first.proc.pid, signal.SIGKILL)  # no finally, no release, no goodbye
            await asyncio.to_thread(first.proc.wait, 10)
            with contextlib.suppress(httpx.HTTPError):
                await doomed
        del stripe.held[path]
        gate.set()
        claim = await db.billing_events.find_one({"_id": evt["id"]})
        assert claim["state"] == "applying" and claim["attempts"] == 1

        second = launch(data_dir, **env)
        await asyncio.to_thread(second.wait_ready)
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
            served = SimpleNamespace(client=client)
            deadline = time.monotonic() + 30
            while (resp := await deliver(served, evt)).status_code == 409:  # Stripe retries until the lease ends
                assert int(resp.headers["Retry-After"]) <= 5 and time.monotonic() < deadline
                await asyncio.sleep(0.2)
            assert resp.status_code == 200 and resp.json()["duplicate"] is False, resp.text
            assert (await deliver(served, evt)).json()["duplicate"] is True
            assert (await mine(served, viewer))["status"] == "canceled"
        claim = await db.billing_events.find_one({"_id": evt["id"]})
        assert claim["state"] == "applied" and claim["attempts"] == 2
        ended_mail = await db.outbox.count_documents({"to": viewer["email"], "subject": "Subscription ended"})
        assert ended_mail == 1
    finally:
        await mongo.drop_database(db_name)
        await mongo.close()


async def test_messages_of_a_change_written_just_before_a_crash_are_sent_once(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    viewer, _sub_id, evt = await ended_by_stripe(served, stripe)
    uid = viewer["user"]["id"]
    db = served.platform.db
    # What the killed attempt left: the canceled record written from its fetch, the
    # message it held for that change, its claim with the lease run out.
    record = await db.subscriptions.find_one({"_id": uid})
    fetched = time.time_ns()
    await db.subscriptions.replace_one({"_id": uid}, {**record, "status": "canceled", "stripe_status": "canceled",
                                                      "stripe_synced_ns": fetched})
    notice = {"title": "Subscription ended", "body": "Your Standard subscription has ended.",
              "data": {"status": "canceled", "plan_id": "standard"}}
    at = to_ms(now())
    await db.billing_events.insert_one({
        "_id": evt["id"], "type": evt["type"], "received_ms": at, "attempts": 1, "state": "applying",
        "lease_until_ms": at - 1, "notices": {f"subscription_{uid}": {
            "kind": "subscription", "user_id": uid, "synced_ns": fetched, "notices": [notice]}}})
    assert (await billing_emails(served, viewer)).count("Subscription ended") == 0

    assert (await deliver(served, evt)).json()["duplicate"] is False
    assert (await mine(served, viewer))["status"] == "canceled"
    assert (await billing_emails(served, viewer)).count("Subscription ended") == 1
    stored = await db.billing_events.find_one({"_id": evt["id"]})
    assert stored["state"] == "applied" and stored["attempts"] == 2 and "notices" not in stored
