"""Staff announcements: sent by admins (audited), live to every connected viewer in the
audience on every process, and kept for apps that connect later until they expire."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from tests.helpers import NamespaceClient, assert_error, make_staff, signup

pytestmark = pytest.mark.asyncio


async def viewer_socket(served, token: str) -> NamespaceClient:
    device = NamespaceClient("/")
    await device.sio.connect(served.url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
    return device


async def test_an_announcement_reaches_every_viewer_on_every_process_and_waits_for_later_ones(
        start_server, redis_url) -> None:
    shared = {"REDIS_URL": redis_url, "NAMELESS_MONGO_DB": f"test_{uuid.uuid4().hex[:12]}"}
    a, b = await start_server(**shared), await start_server(**shared)
    admin = await make_staff(a, ["admin"])
    viewers = [await signup(a.client) for _ in range(2)]
    devices = [await viewer_socket(a, viewers[0]["access_token"]), await viewer_socket(b, viewers[1]["access_token"])]
    try:
        resp = await a.client.post("/api/v1/admin/announcements", headers=admin["headers"],
                                   json={"title": "Maintenance", "body": "Tonight at 2am", "audience": "all"})
        assert resp.status_code == 201, resp.text
        sent = resp.json()
        assert sent["audience"] == "all" and sent["expires_at"] is None
        for device in devices:
            got = await device.wait("announcement", timeout=5)
            assert got["id"] == sent["id"] and got["title"] == "Maintenance" and got["expires_ms"] is None
        audit = (await a.client.get("/api/v1/admin/audit", headers=admin["headers"])).json()["items"]
        assert any(e["action"] == "announcement.send" and e["target_id"] == sent["id"] for e in audit)
        listed = (await b.client.get("/api/v1/announcements", headers=viewers[1]["headers"])).json()["items"]
        assert [item["id"] for item in listed] == [sent["id"]]
        later = await viewer_socket(b, viewers[1]["access_token"])
        devices.append(later)
        assert (await later.wait("announcement", timeout=5))["id"] == sent["id"]
        await asyncio.sleep(0.3)
        assert len(later.of("announcement")) == 1 and len(devices[1].of("announcement")) == 1
    finally:
        for device in devices:
            await device.close()


async def test_a_plan_announcement_reaches_only_that_plan_and_expires(server) -> None:
    admin = await make_staff(server, ["admin"])
    premium, other = await signup(server.client), await signup(server.client)
    resp = await server.client.post(f"/api/v1/admin/users/{premium['user']['id']}/complimentary",
                                    json={"plan_id": "premium", "days": 30}, headers=admin["headers"])
    assert resp.status_code == 200, resp.text
    on_plan, off_plan = (await viewer_socket(server, premium["access_token"]),
                         await viewer_socket(server, other["access_token"]))
    try:
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
        resp = await server.client.post("/api/v1/admin/announcements", headers=admin["headers"], json={
            "title": "4K weekend", "body": "Free upgrades", "audience": "plan:premium", "expires_at": soon})
        assert resp.status_code == 201, resp.text
        sent = resp.json()
        assert (await on_plan.wait("announcement", timeout=5))["id"] == sent["id"]
        listed = (await server.client.get("/api/v1/announcements", headers=premium["headers"])).json()["items"]
        assert [item["id"] for item in listed] == [sent["id"]]
        assert (await server.client.get("/api/v1/announcements", headers=other["headers"])).json() == {"items": []}
        assert off_plan.of("announcement") == []
        deadline = asyncio.get_running_loop().time() + 10
        while (await server.client.get("/api/v1/announcements", headers=premium["headers"])).json()["items"]:
            assert asyncio.get_running_loop().time() < deadline, "the announcement did not expire"
            await asyncio.sleep(0.2)
    finally:
        await on_plan.close()
        await off_plan.close()


async def test_only_admins_announce_and_bad_input_is_refused(server) -> None:
    admin = await make_staff(server, ["admin"])
    agent = await make_staff(server, ["support_agent"])
    viewer = await signup(server.client)
    good = {"title": "Hi", "body": "There", "audience": "all"}
    assert_error(await server.client.post("/api/v1/admin/announcements", json=good), 401, "not_authenticated")
    for who in (viewer, agent):
        assert_error(await server.client.post("/api/v1/admin/announcements", json=good, headers=who["headers"]),
                     403, "forbidden")
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    for bad in ({**good, "audience": "everyone"}, {**good, "expires_at": past}, {**good, "title": ""}):
        assert_error(await server.client.post("/api/v1/admin/announcements", json=bad, headers=admin["headers"]),
                     400, "validation_failed")
    assert_error(await server.client.post("/api/v1/admin/announcements", json={**good, "audience": "plan:gold"},
                                          headers=admin["headers"]), 422, "plan_not_found")
    assert_error(await server.client.get("/api/v1/announcements"), 401, "not_authenticated")
