"""Content management: who may do it, the title lifecycle, seasons, episodes and
categories, the audit trail, and the scheduled publish job with its release event."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from jobs.catalog import publish
from server.catalog.releases import ContentReleased
from server.core.clock import now, to_ms
from tests.catalog.helpers import API, category, content_manager, create_title, series, titles_of, viewer_account
from tests.helpers import assert_error, make_staff, signup

pytestmark = pytest.mark.asyncio


def _iso(delta: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) + delta).isoformat()


async def _audit(server, target_id: str) -> list[dict]:
    admin = getattr(server, "_test_admin", None) or await make_staff(server, ["admin"])
    server._test_admin = admin  # one admin per test server: each sign-in hashes a password
    resp = await server.client.get(f"{API}/admin/audit", params={"target_id": target_id, "limit": 100},
                                   headers=admin["headers"])
    return resp.json()["items"]


async def test_only_content_managers_manage_content(server) -> None:
    cm = await content_manager(server)
    title = await create_title(server, cm)
    viewer = await signup(server.client)
    agent = await make_staff(server, ["support_agent"])
    root = await make_staff(server, ["super_admin"])
    calls = [("GET", "/admin/titles", None), ("POST", "/admin/titles", {"type": "movie", "title": "x"}),
             ("GET", f"/admin/titles/{title['id']}", None), ("PATCH", f"/admin/titles/{title['id']}", {}),
             ("POST", f"/admin/titles/{title['id']}/publish", None),
             ("POST", f"/admin/titles/{title['id']}/archive", None),
             ("POST", f"/admin/titles/{title['id']}/seasons", {"number": 1}),
             ("GET", "/admin/episodes", None), ("POST", "/admin/episodes", {}),
             ("GET", "/admin/categories", None), ("POST", "/admin/categories", {})]
    for method, path, body in calls:
        for who in (viewer, agent):
            assert_error(await server.client.request(method, API + path, headers=who["headers"], json=body), 403,
                         "forbidden")
        assert_error(await server.client.request(method, API + path, json=body), 401, "not_authenticated")
    assert (await server.client.get(f"{API}/admin/titles", headers=root["headers"])).status_code == 200


async def test_title_lifecycle_validation_and_audit(server) -> None:
    cm = await content_manager(server)
    viewer = await viewer_account(server)
    title = await create_title(server, cm, title="Lifecycle", cast=[{"name": "Ada"}])
    assert title["status"] == "draft" and title["version"] == 1
    tid = title["id"]
    patched = await server.client.patch(f"{API}/admin/titles/{tid}", headers=cm["headers"],
                                        json={"synopsis": "New", "version": 1, "available_until": None})
    assert patched.status_code == 200 and patched.json()["synopsis"] == "New" and patched.json()["version"] == 2
    stale = await server.client.patch(f"{API}/admin/titles/{tid}", headers=cm["headers"],
                                      json={"synopsis": "Old", "version": 1})
    assert_error(stale, 409, "version_conflict")
    for body, field in (({"maturity_rating": "PG"}, "maturity_rating"), ({"title": None}, "title"),
                        ({"year": 1700}, "year"), ({"artwork": {"poster": "javascript:alert(1)"}}, "artwork.poster"),
                        ({"available_from": "2030-01-01T00:00:00"}, "available_from"),
                        ({"available_from": _iso(dt.timedelta(days=2)), "available_until": _iso(dt.timedelta(days=1))},
                         "available_until")):
        error = assert_error(await server.client.patch(f"{API}/admin/titles/{tid}", headers=cm["headers"],
                                                       json=body), 400, "validation_failed")
        assert field in error["details"]["fields"], error
    scheduled = await server.client.post(f"{API}/admin/titles/{tid}/schedule", headers=cm["headers"],
                                         json={"publish_at": _iso(dt.timedelta(days=1))})
    assert scheduled.status_code == 200 and scheduled.json()["status"] == "scheduled"
    assert scheduled.json()["publish_at"] is not None
    published = await server.client.post(f"{API}/admin/titles/{tid}/publish", headers=cm["headers"],
                                         json={"without_media": True})
    assert published.json()["status"] == "published" and published.json()["published_at"]
    assert await titles_of(server, viewer) == [tid]
    assert_error(await server.client.post(f"{API}/admin/titles/{tid}/schedule", headers=cm["headers"],
                                          json={"publish_at": _iso(dt.timedelta(days=1))}), 409, "invalid_transition")
    assert (await server.client.post(f"{API}/admin/titles/{tid}/archive", headers=cm["headers"])).json()[
        "status"] == "archived"
    assert await titles_of(server, viewer) == []
    assert_error(await server.client.post(f"{API}/admin/titles/{tid}/archive", headers=cm["headers"]), 409,
                 "invalid_transition")
    assert (await server.client.post(f"{API}/admin/titles/{tid}/unpublish", headers=cm["headers"])).json()[
        "status"] == "draft"
    listed = (await server.client.get(f"{API}/admin/titles", headers=cm["headers"],
                                      params={"status": "draft", "q": "lifecyc"})).json()["items"]
    assert [t["id"] for t in listed] == [tid]
    assert_error(await server.client.get(f"{API}/admin/titles/{'0' * 24}", headers=cm["headers"]), 404,
                 "title_not_found")
    audit = await _audit(server, tid)
    assert [a["action"] for a in audit] == ["title.unpublish", "title.archive", "title.publish", "title.schedule",
                                            "title.update", "title.create"]
    assert all(a["actor_id"] == cm["id"] for a in audit)
    assert audit[4]["details"]["fields"] == ["synopsis", "window_end_ms"]


async def test_seasons_episodes_and_categories_are_managed_and_audited(server) -> None:
    cm = await content_manager(server)
    await category(server, cm, "drama")
    assert_error(await server.client.post(f"{API}/admin/categories", headers=cm["headers"],
                                          json={"slug": "drama", "name": "Again", "kind": "genre"}), 409, "slug_taken")
    show, eps = await series(server, cm, seasons=1, episodes=2, genres=["drama"])
    sid = show["id"]
    assert_error(await server.client.post(f"{API}/admin/titles/{sid}/seasons", headers=cm["headers"],
                                          json={"number": 1}), 409, "season_exists")
    missing = await server.client.post(f"{API}/admin/episodes", headers=cm["headers"],
                                       json={"title_id": sid, "season": 9, "number": 1, "name": "x"})
    assert_error(missing, 422, "season_not_found")
    dup = await server.client.post(f"{API}/admin/episodes", headers=cm["headers"],
                                   json={"title_id": sid, "season": 1, "number": 2, "name": "x"})
    assert_error(dup, 409, "episode_exists")
    movie = await create_title(server, cm)
    assert_error(await server.client.post(f"{API}/admin/titles/{movie['id']}/seasons", headers=cm["headers"],
                                          json={"number": 1}), 422, "not_a_series")
    renamed = await server.client.patch(f"{API}/admin/episodes/{eps[0]['id']}", headers=cm["headers"],
                                        json={"name": "Pilot", "runtime_s": 1200})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Pilot"
    assert_error(await server.client.patch(f"{API}/admin/episodes/{eps[0]['id']}", headers=cm["headers"],
                                           json={"number": 2}), 409, "episode_exists")
    assert_error(await server.client.delete(f"{API}/admin/titles/{sid}/seasons/1", headers=cm["headers"]), 409,
                 "season_not_empty")
    for ep in eps:
        gone = await server.client.delete(f"{API}/admin/episodes/{ep['id']}", headers=cm["headers"])
        assert gone.status_code == 204
    gone = await server.client.delete(f"{API}/admin/titles/{sid}/seasons/1", headers=cm["headers"])
    assert gone.status_code == 204
    detail = (await server.client.get(f"{API}/admin/titles/{sid}", headers=cm["headers"])).json()
    assert detail["seasons"] == []
    cats = (await server.client.get(f"{API}/admin/categories", headers=cm["headers"])).json()["items"]
    drama = next(c for c in cats if c["slug"] == "drama")
    assert_error(await server.client.delete(f"{API}/admin/categories/{drama['id']}", headers=cm["headers"]), 409,
                 "category_in_use")
    await server.client.patch(f"{API}/admin/titles/{sid}", headers=cm["headers"], json={"genres": []})
    assert (await server.client.patch(f"{API}/admin/categories/{drama['id']}", headers=cm["headers"],
                                      json={"name": "Dramas"})).json()["name"] == "Dramas"
    gone = await server.client.delete(f"{API}/admin/categories/{drama['id']}", headers=cm["headers"])
    assert gone.status_code == 204
    actions = [a["action"] for a in await _audit(server, sid)]
    assert actions.count("season.create") == 1 and actions.count("season.delete") == 1
    assert [a["action"] for a in await _audit(server, eps[0]["id"])] == ["episode.delete", "episode.update",
                                                                        "episode.create"]
    assert [a["action"] for a in await _audit(server, drama["id"])] == ["category.delete", "category.update",
                                                                       "category.create"]


async def test_the_scheduled_job_publishes_once_and_emits_content_released(server) -> None:
    cm = await content_manager(server)
    viewer = await viewer_account(server)
    services = server.runtime.services
    events: list[ContentReleased] = []

    async def collect(event: ContentReleased) -> None:
        events.append(event)

    title = await create_title(server, cm, title="Premiere", publish_at=_iso(dt.timedelta(hours=1)))
    show, _ = await series(server, cm, seasons=1, episodes=1)
    later = (await server.client.post(f"{API}/admin/episodes", headers=cm["headers"], json={
        "title_id": show["id"], "season": 1, "number": 2, "name": "Next week",
        "publish_at": _iso(dt.timedelta(hours=1))})).json()
    assert await titles_of(server, viewer) == [show["id"]]
    assert await publish.run_once(services.content_admin, collect) == []  # not due yet

    due = to_ms(now() + dt.timedelta(hours=2))
    runs = await asyncio.gather(*(publish.run_once(services.content_admin, collect, now_ms=due)
                                  for _ in range(4)))  # several processes' ticks at once
    assert sum(len(r) for r in runs) == 2 and len(events) == 2
    by_kind = {e.kind: e for e in events}
    assert by_kind["title"].title_id == title["id"] and by_kind["title"].title == "Premiere"
    assert by_kind["title"].released_ms == due and by_kind["title"].scheduled
    assert by_kind["episode"].episode_id == later["id"] and by_kind["episode"].title_id == show["id"]
    assert (by_kind["episode"].season, by_kind["episode"].episode) == (1, 2)
    assert sorted(await titles_of(server, viewer, sort="new")) == sorted([title["id"], show["id"]])
    episodes = (await server.client.get(f"{API}/titles/{show['id']}/episodes", headers=viewer["headers"])).json()
    assert [e["number"] for e in episodes["items"]] == [1, 2]
    assert await publish.run_once(services.content_admin, collect, now_ms=due) == []
    audit = await _audit(server, title["id"])
    assert audit[0]["action"] == "title.publish_scheduled" and audit[0]["actor_id"] is None

    # Publishing at once, or adding an episode to a published series, goes through the
    # same event; the scheduler's start/stop works in the serving process.
    services.releases.subscribe(collect)
    instant = await create_title(server, cm, title="Instant")
    await server.client.post(f"{API}/admin/titles/{instant['id']}/publish", headers=cm["headers"],
                             json={"without_media": True})
    await server.client.post(f"{API}/admin/episodes", headers=cm["headers"],
                             json={"title_id": show["id"], "season": 1, "number": 3, "name": "Surprise"})
    assert [(e.kind, e.title_id, e.scheduled) for e in events[2:]] == [("title", instant["id"], False),
                                                                     ("episode", show["id"], False)]
    scheduler = publish.PublishScheduler(services.content_admin, collect, interval_s=0.05)
    await scheduler.start()
    await asyncio.sleep(0.2)
    await scheduler.stop()
    assert scheduler.runs >= 2 and not scheduler.running
