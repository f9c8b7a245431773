"""A webhook event is claimed for one apply at a time, under a lease: a duplicate arriving
mid-apply is told to come back (Stripe retries non-2xx answers), a failed apply frees the
event, and a claim whose applier died (its lease ran out) is taken over. Stripe is made
slow or failing at its HTTP boundary (the stand-in), never inside the app."""

from __future__ import annotations

import asyncio
import random
import uuid

from server.core.clock import now, to_ms
from tests.billing.test_payments import billing_emails, deliver, ended_by_stripe, mine, subscribe
from tests.fakes.stripe import event
from tests.helpers import assert_error, eventually, signup


async def test_a_duplicate_mid_apply_is_told_to_retry_and_applies_once(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    viewer, sub_id, evt = await ended_by_stripe(served, stripe)
    path = f"/v1/subscriptions/{sub_id}"
    gate = stripe.hold(path)
    first = asyncio.create_task(deliver(served, evt))
    await eventually(lambda: path in stripe.waiting)
    again = await deliver(served, evt)
    error = assert_error(again, 409, "event_in_progress")
    assert 1 <= int(again.headers["Retry-After"]) <= 60 and error["details"]["retry_after"] >= 1
    gate.set()
    assert (await first).json() == {"received": True, "duplicate": False}
    assert (await deliver(served, evt)).json()["duplicate"] is True
    assert (await mine(served, viewer))["status"] == "canceled"
    assert (await billing_emails(served, viewer)).count("Subscription ended") == 1
    stored = await served.platform.db.billing_events.find_one({"_id": evt["id"]})
    assert stored["state"] == "applied" and stored["attempts"] == 1


async def test_a_failed_apply_frees_the_event_for_the_retry(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    viewer, sub_id, evt = await ended_by_stripe(served, stripe)
    stripe.failing.add(f"/v1/subscriptions/{sub_id}")
    assert_error(await deliver(served, evt), 503, "payment_provider_unavailable")
    assert (await mine(served, viewer))["status"] == "active"
    stripe.failing.clear()
    assert (await deliver(served, evt)).json()["duplicate"] is False  # Stripe's retry
    assert (await mine(served, viewer))["status"] == "canceled"
    stored = await served.platform.db.billing_events.find_one({"_id": evt["id"]})
    assert stored["state"] == "applied" and stored["attempts"] == 2


async def test_a_claim_whose_applier_died_is_taken_over_after_its_lease(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    viewer, _sub_id, evt = await ended_by_stripe(served, stripe)
    events = served.platform.db.billing_events
    # What a process killed mid-apply leaves: a claim in `applying`, its lease still running...
    at = to_ms(now())
    await events.insert_one({"_id": evt["id"], "type": evt["type"], "received_ms": at, "attempts": 1,
                             "state": "applying", "lease_until_ms": at + 60_000})
    assert_error(await deliver(served, evt), 409, "event_in_progress")
    assert (await mine(served, viewer))["status"] == "active"
    # ...and once it has run out, the next delivery applies the event
    await events.update_one({"_id": evt["id"]}, {"$set": {"lease_until_ms": at - 1}})
    assert (await deliver(served, evt)).json()["duplicate"] is False
    assert (await mine(served, viewer))["status"] == "canceled"
    stored = await events.find_one({"_id": evt["id"]})
    assert stored["state"] == "applied" and stored["attempts"] == 2


async def test_a_storm_of_duplicates_out_of_order_into_two_processes(start_server, stripe_fake) -> None:
    """64 deliveries at once (32 events, each twice, shuffled) into two app instances on one
    database: each event applied once, every subscription ends as Stripe has it, and each
    change told once."""
    stripe = stripe_fake
    db_name = f"test_{uuid.uuid4().hex[:12]}"
    one = await start_server(**stripe.env(), NAMELESS_MONGO_DB=db_name)
    two = await start_server(**stripe.env(), NAMELESS_MONGO_DB=db_name)
    viewers, events, stale = [], [], []
    for end in range(4):
        viewer = await signup(one.client)
        sub_id = await subscribe(one, stripe, viewer)
        first = await stripe.ls("GET", f"/v1/subscriptions/{sub_id}")
        stale.append(first)
        events.append(event("customer.subscription.created", first))
        if end == 0:
            events.append(event("invoice.paid", await stripe.charge_renewal(sub_id)))
        elif end == 1:
            events.append(event("invoice.payment_failed", await stripe.fail_renewal(sub_id)))
        elif end == 2:
            await stripe.ls("POST", f"/v1/subscriptions/{sub_id}", {"cancel_at_period_end": True})
        else:
            ended = await stripe.ls("DELETE", f"/v1/subscriptions/{sub_id}")
            events.append(event("customer.subscription.deleted", ended))
        events.append(event("customer.subscription.updated", await stripe.ls("GET", f"/v1/subscriptions/{sub_id}")))
        viewers.append((viewer, sub_id))
    rng = random.Random(7)
    while len(events) < 32:  # stale snapshots, told again by new events
        events.append(event("customer.subscription.updated", rng.choice(stale)))
    deliveries = [(served, evt) for evt in events for served in (one, two)]
    rng.shuffle(deliveries)

    async def until_answered(served, evt) -> bool:
        while (resp := await deliver(served, evt)).status_code == 409:  # Stripe resends later
            await asyncio.sleep(0.05)
        assert resp.status_code == 200, resp.text
        return resp.json()["duplicate"] is False

    applied = await asyncio.gather(*(until_answered(served, evt) for served, evt in deliveries))
    assert sum(applied) == len(events) == 32
    ids = [evt["id"] for evt in events]
    assert await one.platform.db.billing_events.count_documents({"_id": {"$in": ids}, "state": "applied"}) == 32
    for viewer, sub_id in viewers:
        truth = await stripe.ls("GET", f"/v1/subscriptions/{sub_id}")
        view = await mine(two, viewer)
        assert (view["status"], view["cancel_at_period_end"]) == (truth["status"], truth["cancel_at_period_end"])
    told = [await billing_emails(one, viewer) for viewer, _ in viewers]
    assert told[0].count("Payment received") == 1 and told[1].count("Payment failed") == 1
    assert told[2].count("Subscription canceled") == 1 and told[3].count("Subscription ended") == 1
    assert all(t.count("Subscription active") == 1 for t in told)
