"""Recommendations: the job learns from what viewers watch together, genres and people,
excludes what a profile finished, explains each suggestion, and falls back to popular
titles; the demo loader gives a newcomer a real home page."""

from __future__ import annotations

import asyncio
import multiprocessing

import pytest

from server.app.demo.catalog import load_demo
from server.catalog import rollups
from tests.catalog.helpers import (
    API,
    add_profile,
    category,
    content_manager,
    published_title,
    quiet_viewer,
    viewer_account,
)

pytestmark = pytest.mark.asyncio


async def _recommended(server, user, profile_id=None) -> list[dict]:
    params = {"profile_id": profile_id} if profile_id else {}
    resp = await server.client.get(f"{API}/me/recommendations", headers=user["headers"], params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def _recommend_as_served(sources: rollups.RollupSources) -> int:
    """The job as a serving process runs it: in a worker process of its own, seen here."""
    run = asyncio.ensure_future(rollups.recommend_apart(sources))
    seen_apart = False
    while not run.done() and not seen_apart:
        seen_apart = any(p.name == "nameless-recommendations" for p in multiprocessing.active_children())
        await asyncio.sleep(0.01)
    assert seen_apart, "the run finished without a worker process"
    return await run


async def test_the_job_suggests_co_watched_titles_with_reasons_and_skips_finished_ones(server) -> None:
    cm = await content_manager(server)
    services = server.runtime.services
    await category(server, cm, "drama", "Drama")
    await category(server, cm, "comedy", "Comedy")
    a = await published_title(server, cm, title="Anchor", genres=["drama"])
    b = await published_title(server, cm, title="Companion", genres=["comedy"])
    c = await published_title(server, cm, title="Same Genre", genres=["drama"])
    d = await published_title(server, cm, title="Same Star", cast=[{"name": "Ada Star"}])
    e = await published_title(server, cm, title="Star Vehicle", cast=[{"name": "Ada Star"}])
    blockbuster = await published_title(server, cm, title="Blockbuster")
    # Viewers who watched the anchor also watched the companion.
    for _ in range(4):
        other = await quiet_viewer(server)
        for title in (a, b):
            await services.history.record_progress(other, title["id"], 5800, 6000)
    for _ in range(5):  # popular, but with nobody who shares the target's taste
        await services.history.record_progress(await quiet_viewer(server), blockbuster["id"], 100, 6000)
    target = await viewer_account(server)
    await services.history.record_progress(target["viewer"], a["id"], 5900, 6000)  # finished
    fan = await viewer_account(server)
    await services.history.record_progress(fan["viewer"], d["id"], 5900, 6000)
    newcomer = await viewer_account(server)
    before = await _recommended(server, target)  # no stored list yet (kept by this process)
    assert {i["reason"] for i in before} == {"Popular on Nameless"}

    assert await _recommend_as_served(services.rollup_sources) == 11
    items = await _recommended(server, target)  # the run dropped the kept list
    ids = [i["title"]["id"] for i in items]
    assert ids[0] == b["id"] and items[0]["reason"] == "Because you watched Anchor"
    assert a["id"] not in ids  # finished
    assert next(i for i in items if i["title"]["id"] == c["id"])["reason"] == "Because you like Drama"
    assert all(isinstance(i["reason"], str) and i["reason"] for i in items)
    fan_items = {i["title"]["id"]: i for i in await _recommended(server, fan)}
    assert fan_items[e["id"]]["reason"] == "With Ada Star, like Same Star"
    assert fan_items[blockbuster["id"]]["reason"] == "Popular on Nameless"
    # No activity: popular titles, most popular first.
    fresh = await _recommended(server, newcomer)
    assert fresh[0]["title"]["id"] == blockbuster["id"]
    assert {i["reason"] for i in fresh} == {"Popular on Nameless"}
    # Finishing a suggestion removes it at once, before the job runs again.
    await services.history.record_progress(target["viewer"], b["id"], 6000, 6000)
    assert b["id"] not in [i["title"]["id"] for i in await _recommended(server, target)]
    # The home row is the same list.
    home = (await server.client.get(f"{API}/home", headers=target["headers"])).json()
    row = next(r for r in home["rows"] if r["id"] == "recommended")
    assert [i["title"]["id"] for i in row["items"]] == [i["title"]["id"] for i in await _recommended(server, target)]


async def test_kids_profiles_only_get_titles_within_their_rating(server) -> None:
    cm = await content_manager(server)
    services = server.runtime.services
    family = await published_title(server, cm, title="Family Night", maturity_rating="all")
    cartoon = await published_title(server, cm, title="Cartoon", maturity_rating="7+")
    thriller = await published_title(server, cm, title="Thriller", maturity_rating="18+")
    parent = await viewer_account(server)
    kid = await add_profile(server, parent, "Kid", kids=True)
    for title in (family, cartoon, thriller):
        await services.history.record_progress(parent["viewer"], title["id"], 5900, 6000)
    other = await quiet_viewer(server)
    for title in (family, thriller):
        await services.history.record_progress(other, title["id"], 5900, 6000)
    await services.history.record_progress(kid, family["id"], 5900, 6000)
    await rollups.recommend(services.rollup_sources)
    stored = await services.rollup_sources.store.get(kid.profile_id)
    assert thriller["id"] not in [i["title_id"] for i in stored["items"]]
    assert [i["title"]["id"] for i in await _recommended(server, parent, kid.profile_id)] == [cartoon["id"]]


async def test_trending_counts_recent_first_views(server) -> None:
    cm = await content_manager(server)
    services = server.runtime.services
    quiet, hot = await published_title(server, cm), await published_title(server, cm)
    for _ in range(3):
        await services.history.record_progress(await quiet_viewer(server), hot["id"], 10, 6000)
    other = await viewer_account(server)
    await services.history.record_progress(other["viewer"], quiet["id"], 10, 6000)
    await services.history.record_progress(other["viewer"], quiet["id"], 20, 6000)  # same profile: counts once
    assert await rollups.trending(services.rollup_sources.titles) == 2
    home = (await server.client.get(f"{API}/home", headers=other["headers"])).json()
    trending = next(r for r in home["rows"] if r["id"] == "trending")
    assert [i["title"]["id"] for i in trending["items"]] == [hot["id"], quiet["id"]]


async def test_the_demo_catalog_gives_a_newcomer_a_real_home_page(server) -> None:
    services = server.runtime.services
    created = await load_demo(services, viewers=8, clips=1)
    assert created["titles"] == 19 and created["episodes"] > 30 and created["categories"] == 9
    again = await load_demo(services, viewers=8, clips=1)
    assert again == {"categories": 0, "titles": 0, "episodes": 0, "viewers": 0, "clips": 0, "playable": 0}
    newcomer = await viewer_account(server)
    home = (await server.client.get(f"{API}/home", headers=newcomer["headers"])).json()
    rows = {r["id"]: r for r in home["rows"]}
    assert len(rows["trending"]["items"]) > 3 and len(rows["new_releases"]["items"]) == 18
    assert len(rows["recommended"]["items"]) > 3
    assert len([r for r in rows if r.startswith("genre:")]) == 8
    poster = rows["new_releases"]["items"][0]["title"]["artwork"]["poster"]
    assert poster.startswith("data:image/svg+xml;base64,")
    series = next(i["title"] for i in rows["new_releases"]["items"] if i["title"]["type"] == "series")
    detail = (await server.client.get(f"{API}/titles/{series['id']}", headers=newcomer["headers"])).json()
    assert detail["seasons"] and detail["seasons"][0]["episode_count"] > 0
    assert len(await _recommended(server, newcomer)) == 18
