"""The outbox sends through the real firebase-admin and mailchimp-marketing clients, pointed
at local servers speaking FCM HTTP v1 and the Mailchimp Marketing API: every device gets one
push, unregistered tokens are forgotten, 5xx and timeouts are retried (or, where the push may
have left, not sent again), preferences, quiet hours and opt-outs apply."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.fakes.messaging import start_fakes
from tests.helpers import assert_error, eventually, make_staff, signup


@pytest.fixture
def fakes():
    fakes, stop = start_fakes()
    yield fakes
    stop()


@pytest.fixture
async def messaging_server(start_server, fakes, tmp_path):
    key = tmp_path / "firebase.json"
    key.write_text(json.dumps(fakes.service_account()))
    return await start_server(**fakes.env(str(key)), NAMELESS_DELIVERY_RETRY_BASE="0.05",
                              NAMELESS_PROVIDER_TIMEOUT_S="1", MAILCHIMP_WEBHOOK_SECRET="mc-hook-secret-0123456789")




async def user_with_devices(served, *platforms: str) -> tuple[dict, list[str]]:
    account = await signup(served.client)
    me = (await served.client.get("/api/v1/me", headers=account["headers"])).json()
    account["id"] = me["id"]
    tokens = []
    for platform in platforms:
        token = f"fcm:{uuid.uuid4().hex}"
        resp = await served.client.put(f"/api/v1/me/devices/{token}", json={"platform": platform},
                                       headers=account["headers"])
        assert resp.status_code == 204, resp.text
        tokens.append(token)
    return account, tokens


async def deliveries(served, user_id: str, channel: str) -> list[dict]:
    """The user's deliveries on a channel, leaving out the sign-up's verification email."""
    query = {"user_id": user_id, "channel": channel, "kind": {"$ne": "verify_email"}}
    return [d async for d in served.platform.db.outbox.find(query)]


async def settled(served, user_id: str, channel: str, status: str = "sent") -> dict:
    async def check():
        found = await deliveries(served, user_id, channel)
        return found[0] if found and found[0]["status"] == status else None
    return await eventually(check)


async def test_each_device_gets_one_push_with_its_platform_payload_and_dead_tokens_are_forgotten(
        messaging_server, fakes) -> None:
    account, (android, ios, gone) = await user_with_devices(messaging_server, "android", "ios", "android")
    fakes.unregistered.add(gone)
    notifications = messaging_server.runtime.services.notifications
    await notifications.notify(account["id"], "account", "Hello", "Welcome aboard", {"link": "/home"})
    delivery = await settled(messaging_server, account["id"], "push")
    assert fakes.per_token() == {android: 1, ios: 1}
    sent = {p["message"]["token"]: p["message"] for p in fakes.pushes}
    assert sent[android]["android"]["notification"]["tag"] == delivery["_id"]
    assert sent[ios]["apns"]["headers"]["apns-collapse-id"] == delivery["_id"][:64]
    assert sent[ios]["apns"]["payload"]["aps"]["badge"] == 1  # the unread notification
    assert sent[android]["data"]["link"] == "/home" and sent[android]["notification"]["title"] == "Hello"
    assert await messaging_server.platform.db.devices.find_one({"_id": gone}) is None
    assert await messaging_server.platform.db.devices.find_one({"_id": android}) is not None
    # The account email went to Mailchimp as a member event.
    events = await eventually(lambda: fakes.events_for(account["email"], "nameless_account"))
    assert events[0]["properties"]["subject"] == "Hello"


async def test_5xx_is_retried_with_backoff_until_sent_once(messaging_server, fakes) -> None:
    account, (token,) = await user_with_devices(messaging_server, "android")
    fakes.fail_next.extend([503, 500, 429])
    await messaging_server.runtime.services.notifications.notify(account["id"], "support", "Reply", "We answered")
    delivery = await settled(messaging_server, account["id"], "push")
    assert delivery["attempts"] == 4
    assert fakes.per_token() == {token: 1}


async def test_a_push_that_timed_out_after_reaching_fcm_is_not_sent_again(messaging_server, fakes) -> None:
    account, (token,) = await user_with_devices(messaging_server, "ios")
    fakes.stall_s, fakes.stall_next = 2.0, 1
    await messaging_server.runtime.services.notifications.notify(account["id"], "support", "Reply", "We answered")
    delivery = await settled(messaging_server, account["id"], "push", "unconfirmed")
    assert fakes.per_token() == {token: 1} and delivery["attempts"] == 1
    # Staff may send it again; the collapse id lets the device show it once.
    admin = await make_staff(messaging_server, ["admin"])
    resp = await messaging_server.client.post(f"/api/v1/admin/outbox/{delivery['_id']}/retry",
                                              headers=admin["headers"])
    assert resp.status_code == 204, resp.text
    await settled(messaging_server, account["id"], "push", "sent")
    assert fakes.per_token() == {token: 2}
    assert_error(await messaging_server.client.post(f"/api/v1/admin/outbox/{delivery['_id']}/retry",
                                                    headers=admin["headers"]), 409, "delivery_not_retryable")


async def test_an_email_that_timed_out_after_landing_is_found_and_not_sent_again(messaging_server, fakes) -> None:
    account, _ = await user_with_devices(messaging_server)
    await eventually(lambda: fakes.events_for(account["email"], "nameless_verify_email"))
    fakes.stall_s, fakes.mc_stall_next, fakes.mc_stall_lands = 1.5, 1, True  # it lands, the answer is late
    fakes.mc_fail_next.append(503)
    await messaging_server.runtime.services.notifications.notify(account["id"], "billing", "Receipt", "Paid: $9")
    delivery = await settled(messaging_server, account["id"], "email")
    assert delivery["attempts"] == 3
    billing = fakes.events_for(account["email"], "nameless_billing")
    assert [e["properties"]["delivery_id"] for e in billing] == [delivery["_id"]]


async def test_the_password_reset_email_carries_a_working_link_only_at_mailchimp(messaging_server, fakes) -> None:
    account, _ = await user_with_devices(messaging_server)
    resp = await messaging_server.client.post("/api/v1/auth/password/forgot", json={"email": account["email"]})
    assert resp.status_code in (200, 202, 204), resp.text
    events = await eventually(lambda: fakes.events_for(account["email"], "nameless_reset_password"))
    link = events[0]["properties"]["link"]
    assert "/reset-password?token=" in link
    # Mailchimp has the event; the record is marked sent once its answer is back.
    outbox = messaging_server.platform.db.outbox
    stored = await eventually(lambda: outbox.find_one({"to": account["email"], "kind": "reset_password",
                                                       "status": "sent"}))
    assert "token=" not in json.dumps(stored, default=str)


async def test_without_provider_settings_deliveries_are_skipped_and_the_inbox_still_works(server) -> None:
    account, _ = await user_with_devices(server, "android")
    await server.runtime.services.notifications.notify(account["id"], "billing", "Receipt", "Paid")
    push = await settled(server, account["id"], "push", "skipped")
    email = await settled(server, account["id"], "email", "skipped")
    assert "FIREBASE_CREDENTIALS_FILE" in push["reason"] and "MAILCHIMP_API_KEY" in email["reason"]
    inbox = (await server.client.get("/api/v1/me/notifications", headers=account["headers"])).json()
    assert [n["title"] for n in inbox["items"]] == ["Receipt"]


async def test_quiet_hours_hold_non_urgent_pushes_and_account_email_cannot_be_turned_off(
        messaging_server, fakes) -> None:
    account, _ = await user_with_devices(messaging_server, "android")
    headers = account["headers"]
    path = "/api/v1/me/notification-preferences"
    assert_error(await messaging_server.client.patch(path, json={"billing": {"email": False}}, headers=headers),
                 400, "validation_failed")
    # A window that always contains now: 00:00 to 23:59 in UTC.
    resp = await messaging_server.client.patch(path, headers=headers, json={
        "quiet_hours": {"start": "00:00", "end": "23:59", "time_zone": "UTC"}, "release": {"email": True}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["quiet_hours"]["time_zone"] == "UTC"
    notifications = messaging_server.runtime.services.notifications
    await notifications.notify(account["id"], "release", "Out now", "A new film")
    await notifications.notify(account["id"], "account", "Security", "New sign-in")
    held = await eventually(lambda: _one(messaging_server, account["id"], "release", "pending"))
    assert held["due_ms"] > held["created_at"].timestamp() * 1000 + 60_000
    await eventually(lambda: _one(messaging_server, account["id"], "account", "sent"))
    assert [p["message"]["notification"]["title"] for p in fakes.pushes] == ["Security"]


async def test_an_unsubscribe_at_mailchimp_stops_marketing_email_but_not_billing(messaging_server, fakes) -> None:
    account, _ = await user_with_devices(messaging_server)
    client, headers = messaging_server.client, account["headers"]
    await client.patch("/api/v1/me/notification-preferences", json={"promotions": {"email": True}}, headers=headers)
    assert (await client.post("/webhooks/mailchimp/wrong-secret-0123456789", data={
        "type": "unsubscribe", "data[email]": account["email"]})).status_code == 404
    resp = await client.post("/webhooks/mailchimp/mc-hook-secret-0123456789", data={
        "type": "unsubscribe", "data[email]": account["email"], "data[list_id]": "aud123"})
    assert resp.status_code == 200, resp.text
    prefs = (await client.get("/api/v1/me/notification-preferences", headers=headers)).json()["preferences"]
    assert prefs["promotions"]["email"] is False and prefs["billing"]["email"] is True
    notifications = messaging_server.runtime.services.notifications
    await notifications.notify(account["id"], "promotions", "Half price", "This week only")
    await notifications.notify(account["id"], "billing", "Payment failed", "Update your card")
    await settled(messaging_server, account["id"], "email")
    names = [e["name"] for e in fakes.events_for(account["email"]) if e["name"] != "nameless_verify_email"]
    assert names == ["nameless_billing"]


async def test_pushes_past_the_hourly_limit_stay_in_the_inbox(start_server, fakes, tmp_path) -> None:
    key = tmp_path / "firebase.json"
    key.write_text(json.dumps(fakes.service_account()))
    served = await start_server(**fakes.env(str(key)), NAMELESS_PUSH_PER_HOUR="2")
    account, (token,) = await user_with_devices(served, "android")
    for n in range(4):
        await served.runtime.services.notifications.notify(account["id"], "new_episode", f"Episode {n}", "Out now")

    async def all_settled():
        found = await deliveries(served, account["id"], "push")
        return found if len(found) == 4 and all(d["status"] in ("sent", "skipped") for d in found) else None

    found = await eventually(all_settled)
    assert sorted(d["status"] for d in found) == ["sent", "sent", "skipped", "skipped"]
    assert fakes.per_token() == {token: 2}
    inbox = (await served.client.get("/api/v1/me/notifications", headers=account["headers"])).json()
    assert len(inbox["items"]) == 4


async def _one(served, user_id: str, kind: str, status: str) -> dict | None:
    doc = await served.platform.db.outbox.find_one({"user_id": user_id, "kind": kind, "channel": "push"})
    return doc if doc is not None and doc["status"] == status else None


async def test_the_mailchimp_member_follows_verification_and_marketing_choices(messaging_server, fakes) -> None:
    account, _ = await user_with_devices(messaging_server)
    client, headers, email = messaging_server.client, account["headers"], account["email"]
    sent = await eventually(lambda: fakes.events_for(email, "nameless_verify_email"))
    token = sent[0]["properties"]["link"].partition("token=")[2]
    assert fakes.member(email)["status"] == "transactional"  # unverified: account email only
    assert (await client.post("/api/v1/auth/email/verify", json={"token": token})).status_code in (200, 204)
    await eventually(lambda: (fakes.member(email) or {}).get("tags", {}).get("verified"))
    assert fakes.member(email)["status"] == "transactional"  # verified, but no marketing email chosen

    await client.patch("/api/v1/me/notification-preferences", json={"promotions": {"email": True}}, headers=headers)
    # The status and the tags are two Mailchimp calls: wait for both.
    await eventually(lambda: fakes.member(email)["status"] == "subscribed"
                     and fakes.member(email)["tags"]["email:promotions"] is True)

    await client.patch("/api/v1/me/notification-preferences", json={"promotions": {"email": False}}, headers=headers)
    await eventually(lambda: fakes.member(email)["status"] == "unsubscribed"
                     and fakes.member(email)["tags"]["email:promotions"] is False)


async def test_broadcasts_reach_the_opted_in_through_a_topic_and_a_campaign(messaging_server, fakes) -> None:
    account, (token,) = await user_with_devices(messaging_server, "android")
    client, headers = messaging_server.client, account["headers"]
    await eventually(lambda: token in fakes.topics.get("release", set()))
    assert token not in fakes.topics.get("promotions", set())  # promotions push is off by default
    await client.patch("/api/v1/me/notification-preferences", json={"promotions": {"push": True}}, headers=headers)
    await eventually(lambda: token in fakes.topics.get("promotions", set()))
    await client.patch("/api/v1/me/notification-preferences", json={"release": {"push": False}}, headers=headers)
    await eventually(lambda: token not in fakes.topics.get("release", set()))

    body = {"kind": "promotions", "title": "Half price", "body": "This week only"}
    assert_error(await client.post("/api/v1/admin/broadcasts", json=body, headers=headers), 403, "forbidden")
    admin = await make_staff(messaging_server, ["admin"])
    resp = await client.post("/api/v1/admin/broadcasts", json=body, headers=admin["headers"])
    assert resp.status_code == 202, resp.text
    topic = await eventually(lambda: [p["message"] for p in fakes.pushes
                                                  if p["message"].get("topic") == "promotions"])
    assert topic[0]["notification"] == {"title": "Half price", "body": "This week only"}
    campaign = await eventually(lambda: [c for c in fakes.campaigns if c["status"] == "sent"])
    assert campaign[0]["settings"]["subject_line"] == "Half price"
    assert campaign[0]["content"]["plain_text"] == "This week only"
