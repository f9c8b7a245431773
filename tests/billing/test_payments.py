"""Paid subscriptions against a Stripe stand-in: localstripe (PyPI) as its own process for
customers, products, plans, subscriptions and invoices, and a small local server in front
of it for prices, promotion codes, Checkout and the portal (tests/fakes/stripe.py). The
app's real stripe library makes the calls; webhooks are signed with Stripe's scheme."""

from __future__ import annotations

import json
import time
from typing import Any

from server.billing.payments import BillingService
from tests.fakes.stripe import GOOD_CARD, StripeStandIn, event, sign
from tests.helpers import assert_error, eventually, make_staff, signup
from tests.realtime.test_gateway import Client

WEBHOOK = "/webhooks/stripe"




async def deliver(served, evt: dict[str, Any], **sign_kw: Any):
    payload = json.dumps(evt).encode()
    return await served.client.post(WEBHOOK, content=payload, headers={
        "Stripe-Signature": sign(payload, **sign_kw), "Content-Type": "application/json"})


async def mine(served, viewer) -> dict[str, Any]:
    resp = await served.client.get("/api/v1/me/subscription", headers=viewer["headers"])
    assert resp.status_code == 200, resp.text
    return resp.json()


async def subscribe(served, stripe: StripeStandIn, viewer, plan: str = "standard") -> str:
    """Checkout, payment on Stripe's page, and the checkout.session.completed webhook."""
    resp = await served.client.post("/api/v1/billing/checkout", json={"plan_id": plan}, headers=viewer["headers"])
    assert resp.status_code == 200, resp.text
    session = await stripe.complete_checkout(resp.json()["session_id"])
    delivered = await deliver(served, event("checkout.session.completed", session))
    assert delivered.status_code == 200, delivered.text
    assert (await mine(served, viewer))["status"] == "active"
    return session["subscription"]


async def ended_by_stripe(served, stripe: StripeStandIn) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A subscribed viewer whose subscription Stripe has just ended, and the event telling
    of it (not delivered yet)."""
    viewer = await signup(served.client)
    sub_id = await subscribe(served, stripe, viewer)
    ended = await stripe.ls("DELETE", f"/v1/subscriptions/{sub_id}")
    return viewer, sub_id, event("customer.subscription.deleted", ended)


async def billing_emails(served, viewer) -> list[str]:
    page = await served.runtime.services.outbox.page(viewer["email"], 100, None)
    return sorted(m["subject"] for m in page["items"] if m["kind"] == "billing")


async def test_subscribe_renew_fail_recover_cancel(billing_server, stripe_fake, tmp_path) -> None:
    served, stripe = billing_server, stripe_fake
    await stripe.register_webhook(served.url + WEBHOOK)  # localstripe's own signed events come too
    viewer = await signup(served.client)
    uid = viewer["user"]["id"]
    socket = Client()
    assert await socket.connect(served.url, viewer["access_token"])
    try:
        redirect = {"success_url": "https://evil.example/steal", "cancel_url": "https://evil.example/"}
        started = await served.client.post("/api/v1/billing/checkout", json={"plan_id": "standard", **redirect},
                                           headers=viewer["headers"])
        assert started.status_code == 200, started.text
        body = started.json()
        assert body["checkout_url"].startswith(stripe.url + "/c/pay/cs_test_")
        params = stripe.session_params[body["session_id"]]
        assert params["payment_method_types"] == ["card"]  # Checkout adds Apple Pay and Google Pay to card
        assert params["success_url"] == "https://app.example.com/billing/done"  # never the request's
        assert params["cancel_url"] == "https://app.example.com/billing/canceled"
        assert params["subscription_data"]["metadata"]["user_id"] == uid
        customer = params["customer"]
        assert await served.runtime.services.entitlements.current(uid) is None

        session = await stripe.complete_checkout(body["session_id"])
        assert (await deliver(served, event("checkout.session.completed", session))).status_code == 200
        view = await mine(served, viewer)
        assert view["status"] == "active" and view["plan"]["id"] == "standard" and view["source"] == "stripe"
        assert not view["cancel_at_period_end"] and view["current_period_end"]
        assert (await served.runtime.services.entitlements.current(uid)).streams == 2
        pushed = await socket.wait_for("subscription.updated")
        assert pushed[-1]["status"] == "active"
        sub_id = session["subscription"]

        # Renewal: a new invoice, paid
        renewal = await stripe.charge_renewal(sub_id)
        assert renewal["status"] == "paid"
        assert (await deliver(served, event("invoice.paid", renewal))).status_code == 200
        invoices = (await served.client.get("/api/v1/me/invoices", headers=viewer["headers"])).json()["items"]
        paid = next(i for i in invoices if i["id"] == renewal["id"])
        assert paid["status"] == "paid" and paid["amount_paid"] == paid["amount"] == 1299 and paid["currency"] == "usd"
        assert paid["hosted_invoice_url"].startswith("http") and paid["invoice_pdf"].startswith("http")

        # The next renewal fails (the cardholder does not pass 3-D Secure): past_due
        failed = await stripe.fail_renewal(sub_id)
        assert failed["status"] == "open"
        assert (await stripe.ls("GET", f"/v1/subscriptions/{sub_id}"))["status"] == "past_due"
        assert (await deliver(served, event("invoice.payment_failed", failed))).status_code == 200
        assert (await mine(served, viewer))["status"] == "past_due"
        assert (await served.runtime.services.entitlements.current(uid)) is not None  # inside the grace period
        await socket.wait_for("subscription.updated", count=2)
        assert socket.received["subscription.updated"][-1]["status"] == "past_due"

        # A good card and a retry: active again
        await stripe.use_card(customer, GOOD_CARD)
        recovered = await stripe.retry_invoice(failed["id"])
        assert recovered["status"] == "paid"
        assert (await deliver(served, event("invoice.paid", recovered))).status_code == 200
        assert (await mine(served, viewer))["status"] == "active"

        # Cancel at period end, take it back, cancel again; then the period ends
        cancel = await served.client.post("/api/v1/me/subscription/cancel", headers=viewer["headers"])
        assert cancel.status_code == 200 and cancel.json()["cancel_at_period_end"] is True
        assert (await stripe.ls("GET", f"/v1/subscriptions/{sub_id}"))["cancel_at_period_end"] is True
        resumed = await served.client.post("/api/v1/me/subscription/resume", headers=viewer["headers"])
        assert resumed.status_code == 200 and resumed.json()["cancel_at_period_end"] is False
        assert (await stripe.ls("GET", f"/v1/subscriptions/{sub_id}"))["cancel_at_period_end"] is False
        await served.client.post("/api/v1/me/subscription/cancel", headers=viewer["headers"])
        ended = await stripe.ls("DELETE", f"/v1/subscriptions/{sub_id}")
        assert (await deliver(served, event("customer.subscription.deleted", ended))).status_code == 200
        assert (await mine(served, viewer))["status"] == "canceled"
        assert await served.runtime.services.entitlements.current(uid) is None
        assert_error(await served.client.post("/api/v1/me/subscription/cancel", headers=viewer["headers"]),
                     404, "subscription_not_found")

        # localstripe's own deliveries (invoice.payment_succeeded and the rest) change nothing now
        await eventually(lambda: served.platform.db.billing_events.count_documents(
            {"type": "invoice.payment_succeeded"}))
        assert (await mine(served, viewer))["status"] == "canceled"
        emails = await billing_emails(served, viewer)
        for subject in ("Subscription active", "Payment failed", "Subscription canceled", "Subscription resumed",
                        "Subscription ended"):
            assert subject in emails, emails
        assert emails.count("Payment received") >= 3  # two receipts and the recovery
        portal = await served.client.post("/api/v1/billing/portal", headers=viewer["headers"])
        assert portal.status_code == 200 and portal.json()["url"].startswith(stripe.url + "/p/session/bps_")
        assert ("POST", "/v1/billing_portal/sessions", "stand-in") in stripe.calls
        assert ("GET", f"/v1/subscriptions/{sub_id}", "localstripe") in stripe.calls
    finally:
        await socket.close()


async def test_each_event_applies_once_and_order_does_not_matter(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    viewer = await signup(served.client)
    sub_id = await subscribe(served, stripe, viewer)
    renewal = await stripe.charge_renewal(sub_id)
    paid = event("invoice.paid", renewal)
    first = await deliver(served, paid)
    again = await deliver(served, paid)
    assert first.status_code == again.status_code == 200  # Stripe stops resending either way
    assert (await billing_emails(served, viewer)).count("Payment received") == 1  # one receipt
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True

    # Stripe ends the subscription; its two events arrive newest first, the stale one last
    before = await stripe.ls("GET", f"/v1/subscriptions/{sub_id}")
    ended = await stripe.ls("DELETE", f"/v1/subscriptions/{sub_id}")
    assert (await deliver(served, event("customer.subscription.deleted", ended))).status_code == 200
    stale = await deliver(served, event("customer.subscription.updated", {**before, "status": "active"}))
    assert stale.status_code == 200
    assert (await mine(served, viewer))["status"] == "canceled"
    assert await served.runtime.services.entitlements.current(viewer["user"]["id"]) is None
    assert (await billing_emails(served, viewer)).count("Subscription ended") == 1


async def test_a_bad_signature_changes_nothing(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    viewer, _sub_id, evt = await ended_by_stripe(served, stripe)
    payload = json.dumps(evt).encode()
    forged = await deliver(served, evt, secret="whsec_not_the_endpoint_secret")
    assert_error(forged, 400, "invalid_signature")
    tampered = await served.client.post(WEBHOOK, content=payload.replace(b'"object": "event"', b'"object":"event"'),
                                        headers={"Stripe-Signature": sign(payload)})
    assert_error(tampered, 400, "invalid_signature")
    assert_error(await served.client.post(WEBHOOK, content=payload), 400, "invalid_signature")
    assert (await mine(served, viewer))["status"] == "active"
    assert await served.platform.db.billing_events.count_documents({"_id": evt["id"]}) == 0
    assert (await deliver(served, evt)).json()["duplicate"] is False  # the genuine one still applies
    assert (await mine(served, viewer))["status"] == "canceled"


async def test_an_old_timestamp_is_refused(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    viewer, _sub_id, evt = await ended_by_stripe(served, stripe)
    old = await deliver(served, evt, timestamp=int(time.time()) - 301)  # tolerance: 300 s
    assert_error(old, 400, "invalid_signature")
    assert (await mine(served, viewer))["status"] == "active"
    assert (await deliver(served, evt, timestamp=int(time.time()) - 5)).status_code == 200
    assert (await mine(served, viewer))["status"] == "canceled"


async def test_another_users_invoice_is_not_found(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    owner, other = await signup(served.client), await signup(served.client)
    sub_id = await subscribe(served, stripe, owner)
    renewal = await stripe.charge_renewal(sub_id)
    assert (await deliver(served, event("invoice.paid", renewal))).status_code == 200
    path = f"/api/v1/me/invoices/{renewal['id']}"
    assert (await served.client.get(path, headers=owner["headers"])).json()["id"] == renewal["id"]
    assert_error(await served.client.get(path, headers=other["headers"]), 404, "invoice_not_found")
    assert (await served.client.get("/api/v1/me/invoices", headers=other["headers"])).json()["items"] == []
    assert_error(await served.client.get(path), 401, "not_authenticated")


async def test_promotion_codes(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    admin = await make_staff(served, ["admin"])
    viewer = await signup(served.client)
    made = await served.client.post("/api/v1/admin/promotions", headers=admin["headers"],
                                    json={"code": "WELCOME20", "percent_off": 20, "duration": "once"})
    assert made.status_code == 201, made.text
    assert (await stripe.ls("GET", f"/v1/coupons/{made.json()['coupon_id']}"))["percent_off"] == 20
    unknown = await served.client.post("/api/v1/billing/checkout", headers=viewer["headers"],
                                       json={"plan_id": "basic", "promotion_code": "NOSUCHCODE"})
    error = assert_error(unknown, 422, "promotion_code_invalid")
    assert "NOSUCHCODE" in error["message"]
    assert stripe.sessions == {}
    ok = await served.client.post("/api/v1/billing/checkout", headers=viewer["headers"],
                                  json={"plan_id": "basic", "promotion_code": "welcome20"})
    assert ok.status_code == 200, ok.text
    params = stripe.session_params[ok.json()["session_id"]]
    assert params["discounts"] == [{"promotion_code": made.json()["promotion_code_id"]}]
    assert_error(await served.client.post("/api/v1/billing/checkout", headers=viewer["headers"],
                                          json={"plan_id": "basic", "promotion_code": "bad code!"}),
                 400, "validation_failed")


async def test_a_price_change_is_a_new_price_and_subscribers_keep_theirs(billing_server, stripe_fake) -> None:
    served, stripe = billing_server, stripe_fake
    admin = await make_staff(served, ["admin"])
    early = await subscribe(served, stripe, await signup(served.client))
    first_price = (await stripe.ls("GET", f"/v1/subscriptions/{early}"))["items"]["data"][0]["plan"]["id"]
    patched = await served.client.patch("/api/v1/admin/plans/standard", json={"price_cents": 1499},
                                        headers=admin["headers"])
    assert patched.status_code == 200
    later = await signup(served.client)
    started = await served.client.post("/api/v1/billing/checkout", json={"plan_id": "standard"},
                                       headers=later["headers"])
    new_price = stripe.session_params[started.json()["session_id"]]["line_items"][0]["price"]
    assert new_price != first_price and stripe.prices[new_price]["unit_amount"] == 1499
    assert stripe.prices[first_price]["unit_amount"] == 1299
    versions = (await served.client.post("/api/v1/admin/plans/standard/prices", headers=admin["headers"])).json()
    assert [v["amount"] for v in versions["items"]] == [1299, 1499]
    # The early subscriber is still on the old price, and still on the standard plan
    assert (await stripe.ls("GET", f"/v1/subscriptions/{early}"))["items"]["data"][0]["plan"]["id"] == first_price
    sub = await stripe.ls("GET", f"/v1/subscriptions/{early}")
    assert (await deliver(served, event("customer.subscription.updated", sub))).status_code == 200
    record = await served.platform.db.subscriptions.find_one({"stripe_subscription_id": early})
    assert record["plan_id"] == "standard" and record["stripe_price_id"] == first_price


async def test_without_stripe_settings_billing_answers_503(start_server) -> None:
    served = await start_server()
    admin = await make_staff(served, ["admin"])
    viewer = await signup(served.client)
    h = viewer["headers"]
    for path, body in (("/api/v1/billing/checkout", {"plan_id": "basic"}), ("/api/v1/billing/portal", None),
                       ("/api/v1/me/subscription/cancel", None), ("/api/v1/me/subscription/resume", None)):
        error = assert_error(await served.client.post(path, json=body, headers=h), 503, "billing_not_configured")
        assert error["message"] == "Billing is not configured: STRIPE_SECRET_KEY is not set.", path
    evt = json.dumps(event("invoice.paid", {"id": "in_x"})).encode()
    hook = await served.client.post(WEBHOOK, content=evt, headers={"Stripe-Signature": sign(evt)})
    assert "STRIPE_WEBHOOK_SECRET is not set" in assert_error(hook, 503, "billing_not_configured")["message"]
    # Complimentary plans do not need Stripe
    grant = await served.client.post(f"/api/v1/admin/users/{viewer['user']['id']}/complimentary",
                                     json={"plan_id": "premium", "days": 30}, headers=admin["headers"])
    assert grant.status_code == 200 and (await mine(served, viewer))["status"] == "active"

    keyed = await start_server(STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_x")
    other = await signup(keyed.client)
    error = assert_error(await keyed.client.post("/api/v1/billing/checkout", json={"plan_id": "basic"},
                                                 headers=other["headers"]), 503, "billing_not_configured")
    assert "NAMELESS_BILLING_SUCCESS_URL is not set" in error["message"]


def test_which_fetch_wins() -> None:
    def rec(sub: str, status: str, synced: int, created: int = 1) -> dict[str, Any]:
        return {"source": "stripe", "stripe_subscription_id": sub, "status": status, "stripe_synced_ns": synced,
                "stripe_created": created, "current_period_end_ms": 10**13}

    supersedes = BillingService._supersedes
    assert supersedes(rec("sub_a", "canceled", 2), rec("sub_a", "active", 1), 0)
    assert not supersedes(rec("sub_a", "active", 1), rec("sub_a", "canceled", 2), 0)  # an older fetch
    assert not supersedes(rec("sub_a", "active", 2), rec("sub_a", "active", 2), 0)
    assert supersedes(rec("sub_b", "active", 1, created=2), rec("sub_a", "canceled", 5), 0)  # live beats ended
    assert not supersedes(rec("sub_a", "canceled", 9), rec("sub_b", "active", 1, created=2), 0)
    comp = {"source": "complimentary", "status": "active", "current_period_end_ms": 10**13}
    assert not supersedes(rec("sub_a", "canceled", 9), comp, 0)
    assert supersedes(rec("sub_a", "active", 9), comp, 0)
