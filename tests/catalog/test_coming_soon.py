"""Announced titles (scheduled for later) have an audience before they are out: a coming
soon row after the contract's rows, within each profile's rating, and a place on the watchlist;
they still cannot be opened or played, and whoever listed one hears of its release once.
The row's absence when nothing is announced is in tests/catalog/test_browse.py (the home
rows in order). Real app over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from jobs.catalog import publish
from server.core.clock import iso, now, to_ms
from tests.catalog.helpers import (
    API,
    add_profile,
    category,
    content_manager,
    create_title,
    from_now,
    published_title,
    viewer_account,
)
from tests.helpers import assert_error, eventually

pytestmark = pytest.mark.asyncio



async def _rows(served, headers: dict[str, str], profile_id: str | None = None) -> dict[str, dict]:
    params = {"profile_id": profile_id} if profile_id else {}
    resp = await served.client.get(f"{API}/home", headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    return {row["id"]: row for row in resp.json()["rows"]}


async def test_announced_titles_are_coming_soon_and_listable_but_not_playable(server) -> None:
    cm = await content_manager(server)
    viewer = await viewer_account(server)
    kid = await add_profile(server, viewer, "Kid", kids=True)
    await category(server, cm, "drama", "Drama")
    out = await published_title(server, cm, title="Out now", genres=["drama"])
    grim = await create_title(server, cm, title="Grim", maturity_rating="18+", publish_at=from_now(hours=1))
    sooner = await create_title(server, cm, title="Sooner", maturity_rating="7+", publish_at=from_now(days=1))
    later = await create_title(server, cm, title="Later", publish_at=from_now(days=2))
    await create_title(server, cm, title="Draft")

    home = (await server.client.get(f"{API}/home", headers=viewer["headers"])).json()
    assert [r["id"] for r in home["rows"]] == ["continue_watching", "recommended", "trending", "new_releases",
                                               "genre:drama", "coming_soon"]  # the contract's rows first
    rows = {row["id"]: row for row in home["rows"]}
    assert [i["title"]["id"] for i in rows["new_releases"]["items"]] == [out["id"]]
    soon = rows["coming_soon"]["items"]
    assert [i["title"]["id"] for i in soon] == [grim["id"], sooner["id"], later["id"]]  # soonest first
    assert [i["publish_at"] for i in soon] == [iso(to_ms(dt.datetime.fromisoformat(t["publish_at"])))
                                               for t in (grim, sooner, later)]
    assert soon[1]["title"]["title"] == "Sooner" and soon[1]["title"]["maturity_rating"] == "7+"
    kids_rows = await _rows(server, viewer["headers"], kid.profile_id)
    assert [i["title"]["id"] for i in kids_rows["coming_soon"]["items"]] == [sooner["id"]]

    # On the list with its release time; a released title has none.
    for title in (later, out):
        resp = await server.client.put(f"{API}/me/watchlist/{title['id']}", headers=viewer["headers"])
        assert resp.status_code == 204, resp.text
    listed = (await server.client.get(f"{API}/me/watchlist", headers=viewer["headers"])).json()["items"]
    assert [(i["title"]["id"], i.get("publish_at")) for i in listed] == [(out["id"], None),
                                                                         (later["id"], soon[2]["publish_at"])]
    kids_put = await server.client.put(f"{API}/me/watchlist/{grim['id']}", headers=viewer["headers"],
                                       params={"profile_id": kid.profile_id})
    assert_error(kids_put, 404, "title_not_found")

    # Announced is not released: no detail, no episodes, no playback, not in browse.
    for path in (f"/titles/{later['id']}", f"/titles/{later['id']}/episodes"):
        assert_error(await server.client.get(API + path, headers=viewer["headers"]), 404, "title_not_found")
    play = await server.client.post(f"{API}/playback/{later['id']}/start", headers=viewer["headers"], json={})
    assert_error(play, 404, "title_not_found")
    browse = (await server.client.get(f"{API}/titles", headers=viewer["headers"])).json()["items"]
    assert [t["id"] for t in browse] == [out["id"]]


async def test_a_listed_announcement_is_released_into_the_rows_and_its_listers_hear_once(server) -> None:
    cm = await content_manager(server)
    fan, stranger = await viewer_account(server), await viewer_account(server)
    services = server.runtime.services
    premiere = await create_title(server, cm, title="Premiere", publish_at=from_now(days=1))
    assert (await server.client.put(f"{API}/me/watchlist/{premiere['id']}", headers=fan["headers"])).status_code == 204
    assert [i["title"]["id"] for i in (await _rows(server, fan["headers"]))["coming_soon"]["items"]] == [
        premiere["id"]]

    due = to_ms(now() + dt.timedelta(days=1, minutes=1))
    released = await publish.run_once(services.content_admin, services.releases.emit, now_ms=due)
    assert [e.title_id for e in released] == [premiere["id"]]

    async def inbox(user) -> list[dict]:
        return (await server.client.get(f"{API}/me/notifications", headers=user["headers"])).json()["items"]

    async def heard() -> bool:
        return bool(await inbox(fan))

    await eventually(heard, "the lister hears of the release", timeout=30)
    job = await server.platform.db.jobs.find_one({"kind": "notifications.release", "payload.title_id": premiere["id"]})
    assert await services.release_notifier.run(job, lambda _: asyncio.sleep(0)) == {"audience": 1, "notified": 0}
    assert await publish.run_once(services.content_admin, services.releases.emit, now_ms=due) == []
    got = await inbox(fan)
    assert [(n["kind"], n["title"], n["data"]) for n in got] == [("release", "Premiere is out",
                                                                  {"title_id": premiere["id"]})]
    assert await inbox(stranger) == []

    # Out now: in the catalog and on the list without a release time, no longer coming soon.
    rows = await _rows(server, fan["headers"])
    assert "coming_soon" not in rows
    browse = (await server.client.get(f"{API}/titles", headers=fan["headers"], params={"sort": "new"})).json()
    assert [t["id"] for t in browse["items"]] == [premiere["id"]]
    assert (await server.client.get(f"{API}/titles/{premiere['id']}", headers=fan["headers"])).status_code == 200
    listed = (await server.client.get(f"{API}/me/watchlist", headers=fan["headers"])).json()["items"]
    assert [(i["title"]["id"], "publish_at" in i) for i in listed] == [(premiere["id"], False)]
