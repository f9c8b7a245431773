"""A delivery worker killed for real: `run.py` gets SIGKILL while a batch is at the providers
(FCM has accepted some pushes and not answered; a Mailchimp call hangs). A new server takes
the batch over once the lease lapses: no delivery is lost, no push is sent twice (the ones
that may have left are `unconfirmed`), and each email is sent exactly once (the ones that
landed are found among the member's events, the one that did not is sent)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid

from bson import ObjectId

from server.core.clock import now, to_ms
from tests.helpers import eventually, signup
from tests.notifications.test_delivery import fakes  # noqa: F401 (fixture)
from tests.platform import test_process

launch = test_process.launch  # starts run.py in its own process group, kills leftovers


async def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
        launch, start_server, fakes, mongo_url, tmp_path) -> None:  # noqa: F811
    key = tmp_path / "firebase.json"
    key.write_text(json.dumps(fakes.service_account()))
    db_name = f"test_{uuid.uuid4().hex[:12]}"
    env = {**fakes.env(str(key)), "NAMELESS_MONGO_DB": db_name, "NAMELESS_SECRET_KEY": "kill-test-" + "k" * 32,
           "NAMELESS_DELIVERY_LEASE": "2", "NAMELESS_DELIVERY_RETRY_BASE": "0.05", "NAMELESS_DELIVERY_BATCH": "10",
           "NAMELESS_LOG_LEVEL": "WARNING"}
    queuer = await start_server(**env, NAMELESS_JOB_WORKERS="0")  # queues, sends nothing
    db = queuer.platform.db
    accounts = [await signup(queuer.client) for _ in range(3)]  # three verification emails, queued first
    users = [str(ObjectId()) for _ in range(20)]
    at = to_ms(now())
    await db.devices.insert_many([{"_id": f"tok-{u}", "user_id": u, "platform": "ios", "registered_ms": at,
                                   "updated_ms": at} for u in users])
    await queuer.runtime.services.notifications.notify_many(users, "support", "Reply", "We answered")
    assert await db.outbox.count_documents({}) == 23

    fakes.stall_s, fakes.stall_next, fakes.mc_stall_next = 60.0, 3, 1
    worker = launch(tmp_path / "worker-data", MONGO_URL=mongo_url, NAMELESS_PROVIDER_TIMEOUT_S="60", **env)

    async def mid_batch():  # every push of the first batch reached FCM, and one email call hangs
        return len(fakes.pushes) == 7 and fakes.mc_stall_next == 0 and \
            await db.outbox.count_documents({"status": "sending"}) == 10

    await eventually(mid_batch, timeout=60)
    os.killpg(worker.proc.pid, signal.SIGKILL)
    await asyncio.to_thread(worker.proc.wait, 10)
    assert await db.outbox.count_documents({"status": "sending"}) == 10

    await start_server(**env, NAMELESS_PROVIDER_TIMEOUT_S="5")  # a new worker on the same database

    async def all_settled():
        return await db.outbox.count_documents({"status": {"$in": ["pending", "sending"]}}) == 0

    await eventually(all_settled, timeout=60)
    pushes = [d async for d in db.outbox.find({"channel": "push"})]
    assert sorted({d["status"] for d in pushes}) == ["sent", "unconfirmed"]
    assert sum(d["status"] == "unconfirmed" for d in pushes) == 7  # the batch in flight: never sent again
    assert fakes.per_token() == {f"tok-{u}": 1 for u in users}
    for account in accounts:
        delivery = await db.outbox.find_one({"to": account["email"], "kind": "verify_email"})
        assert delivery["status"] == "sent"
        assert [e["properties"]["delivery_id"] for e in fakes.events_for(account["email"])] == [delivery["_id"]]
