"""Plans as admins manage them (trial days included), a trial that plays before the first
charge, one receipt per paid invoice, and the billing history a page at a time."""

from __future__ import annotations

import datetime as dt

import pytest

from server.core import errors
from tests.billing.test_payments import billing_emails, deliver, mine, subscribe
from tests.fakes.stripe import event
from tests.helpers import assert_error, make_staff, signup


async def test_a_trial_plays_before_the_first_charge(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    admin = await make_staff(served, ["admin"])
    patched = await served.client.patch("/api/v1/admin/plans/standard", json={"trial_days": 14},
                                        headers=admin["headers"])
    assert patched.status_code == 200 and patched.json()["trial_days"] == 14, patched.text
    plans = (await served.client.get("/api/v1/plans")).json()["items"]
    assert {p["id"]: p["trial_days"] for p in plans} == {"basic": 0, "standard": 14, "premium": 0}

    viewer = await signup(served.client)
    uid = viewer["user"]["id"]
    entitlements = served.runtime.services.entitlements
    with pytest.raises(errors.PaymentRequired):  # what playback start answers with 402
        await entitlements.require(uid)
    started = await served.client.post("/api/v1/billing/checkout", json={"plan_id": "standard"},
                                       headers=viewer["headers"])
    assert started.status_code == 200, started.text
    assert stripe.session_params[started.json()["session_id"]]["subscription_data"]["trial_period_days"] == "14"
    session = await stripe.complete_checkout(started.json()["session_id"])
    assert (await deliver(served, event("checkout.session.completed", session))).status_code == 200
    view = await mine(served, viewer)
    assert view["status"] == "trialing" and view["plan"]["id"] == "standard", view
    ends = dt.datetime.fromisoformat(view["current_period_end"].replace("Z", "+00:00"))
    assert dt.timedelta(days=13) < ends - dt.datetime.now(dt.UTC) <= dt.timedelta(days=14)
    assert (await entitlements.require(uid)).streams == 2
    assert "Trial started" in await billing_emails(served, viewer)


async def test_admins_list_and_add_plans(server) -> None:
    admin = await make_staff(server, ["admin"])
    viewer = await signup(server.client)
    family = {"id": "family", "name": "Family", "price_cents": 2299, "max_height": 2160, "streams": 6,
              "trial_days": 7}
    made = await server.client.post("/api/v1/admin/plans", json=family, headers=admin["headers"])
    assert made.status_code == 201, made.text
    assert made.json() == {**family, "currency": "usd", "interval": "month", "active": True}
    assert_error(await server.client.post("/api/v1/admin/plans", json=family, headers=admin["headers"]),
                 409, "plan_exists")
    hidden = {**family, "id": "legacy", "active": False}
    assert (await server.client.post("/api/v1/admin/plans", json=hidden, headers=admin["headers"])).status_code == 201
    public = [p["id"] for p in (await server.client.get("/api/v1/plans")).json()["items"]]
    assert public == ["basic", "standard", "premium", "family"]
    listed = (await server.client.get("/api/v1/admin/plans", headers=admin["headers"])).json()["items"]
    assert [(p["id"], p["active"]) for p in listed][-2:] == [("family", True), ("legacy", False)]
    assert_error(await server.client.get("/api/v1/admin/plans", headers=viewer["headers"]), 403, "forbidden")
    assert_error(await server.client.post("/api/v1/admin/plans", json={**family, "id": "x2", "streams": 0},
                                          headers=admin["headers"]), 400, "validation_failed")
    audit = (await server.client.get("/api/v1/admin/audit?target_id=family", headers=admin["headers"])).json()
    assert [a["action"] for a in audit["items"]] == ["plan.create"]


async def test_one_receipt_per_invoice_and_the_history_in_pages(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    viewer = await signup(served.client)
    sub_id = await subscribe(served, stripe, viewer)
    first = await stripe.charge_renewal(sub_id)
    second = await stripe.charge_renewal(sub_id)
    for invoice in (first, second):
        assert (await deliver(served, event("invoice.paid", invoice))).json()["duplicate"] is False
    # Another event telling of the same payment (a new event id) sends no second receipt
    assert (await deliver(served, event("invoice.paid", first))).json()["duplicate"] is False
    receipts = [m for m in await billing_emails(served, viewer) if m == "Payment received"]
    assert len(receipts) == 2

    h = viewer["headers"]
    page = (await served.client.get("/api/v1/me/invoices?limit=1", headers=h)).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = (await served.client.get(f"/api/v1/me/invoices?limit=1&cursor={page['next_cursor']}", headers=h)).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert {page["items"][0]["id"], rest["items"][0]["id"]} == {first["id"], second["id"]}
    assert_error(await served.client.get("/api/v1/me/invoices?cursor=nonsense", headers=h), 400, "invalid_cursor")
    assert_error(await served.client.get("/api/v1/me/invoices?limit=101", headers=h), 400, "validation_failed")


async def test_an_upcoming_renewal_queues_a_reminder(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    viewer = await signup(served.client)
    sub_id = await subscribe(served, stripe, viewer)
    sub = await stripe.ls("GET", f"/v1/subscriptions/{sub_id}")
    upcoming = {"object": "invoice", "customer": sub["customer"], "subscription": sub_id, "amount_due": 1299,
                "currency": "usd", "status": "draft", "next_payment_attempt": sub["current_period_end"]}
    assert (await deliver(served, event("invoice.upcoming", upcoming))).json()["duplicate"] is False
    page = await served.runtime.services.outbox.page(viewer["email"], 100, None)
    reminder = [m for m in page["items"] if m["subject"] == "Your subscription renews soon"]
    assert len(reminder) == 1 and "12.99 USD" in reminder[0]["text"], page["items"]
