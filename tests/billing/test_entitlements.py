"""Plans, complimentary grants and what they entitle: the rules on their own, then the
API a staff member and a viewer use."""

from __future__ import annotations

import datetime as dt

from server.billing.entitlements import entitles, shown_status
from tests.helpers import assert_error, make_staff, signup

NOW = 1_800_000_000_000
DAY = 86_400_000


def test_only_live_statuses_inside_the_period_entitle() -> None:
    for status in ("active", "trialing", "past_due"):
        assert entitles({"status": status, "current_period_end_ms": NOW + 1}, NOW)
        assert not entitles({"status": status, "current_period_end_ms": NOW}, NOW)
    for status in ("canceled", "incomplete", "unpaid", None):
        assert not entitles({"status": status, "current_period_end_ms": NOW + DAY}, NOW)
    assert not entitles({"status": "active"}, NOW)
    assert not entitles(None, NOW)


def test_an_expired_complimentary_grant_reads_as_canceled() -> None:
    comp = {"status": "active", "source": "complimentary", "current_period_end_ms": NOW - 1}
    assert shown_status(comp, NOW) == "canceled"
    assert shown_status({**comp, "current_period_end_ms": NOW + DAY}, NOW) == "active"
    assert shown_status({**comp, "source": "stripe"}, NOW) == "active"  # Stripe reports its own changes


async def test_plans_are_public_and_a_new_account_has_none(server) -> None:
    plans = (await server.client.get("/api/v1/plans")).json()["items"]
    assert [p["id"] for p in plans] == ["basic", "standard", "premium"]
    assert {"price_cents", "currency", "interval", "max_height", "streams"} <= set(plans[0])
    viewer = await signup(server.client)
    mine = (await server.client.get("/api/v1/me/subscription", headers=viewer["headers"])).json()
    assert mine == {"status": "none", "plan": None, "current_period_end": None, "cancel_at_period_end": False,
                    "source": None}


async def test_staff_grant_and_end_a_complimentary_plan(server) -> None:
    admin = await make_staff(server, ["admin"])
    viewer = await signup(server.client)
    path = f"/api/v1/admin/users/{viewer['user']['id']}/complimentary"
    granted = await server.client.post(path, json={"plan_id": "standard", "days": 30}, headers=admin["headers"])
    assert granted.status_code == 200, granted.text
    mine = (await server.client.get("/api/v1/me/subscription", headers=viewer["headers"])).json()
    assert mine["status"] == "active" and mine["source"] == "complimentary" and mine["plan"]["id"] == "standard"
    assert (await server.runtime.services.entitlements.current(viewer["user"]["id"])).streams == 2
    ended = await server.client.delete(path, headers=admin["headers"])
    assert ended.status_code == 200 and ended.json()["status"] == "canceled"
    assert await server.runtime.services.entitlements.current(viewer["user"]["id"]) is None
    other = await signup(server.client)
    assert_error(await server.client.delete(f"/api/v1/admin/users/{other['user']['id']}/complimentary",
                                            headers=admin["headers"]), 404, "complimentary_not_found")
    audit = (await server.client.get(f"/api/v1/admin/audit?target_id={viewer['user']['id']}",
                                     headers=admin["headers"])).json()["items"]
    assert [a["action"] for a in audit] == ["subscription.complimentary_end", "subscription.complimentary"]


async def test_grants_and_plan_edits_need_an_admin_and_valid_input(server) -> None:
    admin = await make_staff(server, ["admin"])
    manager = await make_staff(server, ["content_manager"])
    viewer = await signup(server.client)
    path = f"/api/v1/admin/users/{viewer['user']['id']}/complimentary"
    body = {"plan_id": "basic", "days": 7}
    assert_error(await server.client.post(path, json=body, headers=viewer["headers"]), 403, "forbidden")
    assert_error(await server.client.post(path, json=body, headers=manager["headers"]), 403, "forbidden")
    assert_error(await server.client.post(path, json={"plan_id": "gold", "days": 7}, headers=admin["headers"]),
                 422, "plan_not_found")
    assert_error(await server.client.post(path, json={"plan_id": "basic", "days": 0}, headers=admin["headers"]),
                 400, "validation_failed")
    edited = await server.client.patch("/api/v1/admin/plans/basic", json={"price_cents": 899},
                                       headers=admin["headers"])
    assert edited.status_code == 200 and edited.json()["price_cents"] == 899
    assert_error(await server.client.patch("/api/v1/admin/plans/basic", json={"price_cents": 1},
                                           headers=manager["headers"]), 403, "forbidden")
    assert_error(await server.client.patch("/api/v1/admin/plans/gold", json={"price_cents": 1},
                                           headers=admin["headers"]), 404, "plan_not_found")


def test_past_due_keeps_access_only_through_its_grace_period() -> None:
    late = {"status": "past_due", "current_period_end_ms": NOW + 30 * DAY}
    assert entitles({**late, "grace_until_ms": NOW + 1}, NOW)
    assert not entitles({**late, "grace_until_ms": NOW}, NOW)
    assert not entitles({**late, "status": "canceled", "grace_until_ms": NOW + DAY}, NOW)


async def test_a_complimentary_plan_until_a_date(server) -> None:
    admin = await make_staff(server, ["admin"])
    viewer = await signup(server.client)
    path = f"/api/v1/admin/users/{viewer['user']['id']}/complimentary"
    h = admin["headers"]
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=40)).strftime("%Y-%m-%d")
    granted = await server.client.post(path, json={"plan_id": "basic", "ends_at": f"{day}T12:00:00Z"}, headers=h)
    assert granted.status_code == 200, granted.text
    assert granted.json()["current_period_end"].startswith(f"{day}T12:00:00")
    assert (await server.runtime.services.entitlements.current(viewer["user"]["id"])).plan_id == "basic"
    assert_error(await server.client.post(path, json={"plan_id": "basic", "ends_at": "2020-01-01T00:00:00Z"},
                                          headers=h), 422, "invalid_end_date")
    assert_error(await server.client.post(path, json={"plan_id": "basic", "ends_at": "2099-01-31T12:00:00Z"},
                                          headers=h), 422, "invalid_end_date")
    assert_error(await server.client.post(path, json={"plan_id": "basic", "ends_at": "2099-01-31T12:00:00"},
                                          headers=h), 400, "validation_failed")  # no time zone
    both = {"plan_id": "basic", "days": 3, "ends_at": f"{day}T12:00:00Z"}
    assert_error(await server.client.post(path, json=both, headers=h), 400, "validation_failed")
    assert_error(await server.client.post(path, json={"plan_id": "basic"}, headers=h), 400, "validation_failed")
    audit = (await server.client.get(f"/api/v1/admin/audit?target_id={viewer['user']['id']}", headers=h)).json()
    assert audit["items"][0]["details"]["ends_at"].startswith(f"{day}T12:00:00")
