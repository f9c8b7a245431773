"""A webhook event is claimed for one apply at a time, under a lease: a duplicate arriving
mid-apply is told to come back (Stripe retries non-2xx answers), a failed apply frees the
event, and a claim whose applier died (its lease ran out) is taken over. Stripe is made
slow or failing at its HTTP boundary (the stand-in), never inside the app."""

from __future__ import annotations

import asyncio

from server.core.clock import now, to_ms
from tests.billing.test_payments import billing_emails, deliver, ended_by_stripe, eventually, mine
from tests.helpers import assert_error


async def test_a_duplicate_mid_apply_is_told_to_retry_and_applies_once(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    viewer, sub_id, evt = await ended_by_stripe(served, stripe)
    path = f"/v1/subscriptions/{sub_id}"
    gate = stripe.hold(path)
    first = asyncio.create_task(deliver(served, evt))
    await eventually(lambda: asyncio.sleep(0, path in stripe.waiting))
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
