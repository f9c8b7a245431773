"""Title details, seasons and episode pages, kept per process in an LRU of
NAMELESS_CATALOG_DETAILS_CACHED entries (server/catalog/browse.py; the read model holds none
of them): with room for six entries and three series of four each, every answer agrees with
the store, read after read and after each kind of edit (title, season, new episode, episode)
to the series read last, whose entries are the ones kept, then read first."""

from __future__ import annotations

from typing import Any

import pytest

from tests.catalog.helpers import API, content_manager, series, viewer_account

pytestmark = pytest.mark.asyncio


async def _agrees(served: Any, headers: dict[str, str], title_id: str) -> None:
    db = served.platform.db
    detail = await served.client.get(f"{API}/titles/{title_id}", headers=headers)
    assert detail.status_code == 200, detail.text
    stored = await db.titles.find_one({"_id": title_id})
    counts: dict[int, int] = {}
    async for ep in db.episodes.find({"title_id": title_id, "status": "published"}):
        counts[ep["season_number"]] = counts.get(ep["season_number"], 0) + 1
    seasons = [(s["number"], s.get("name") or f"Season {s['number']}", counts[s["number"]])
               async for s in db.seasons.find({"title_id": title_id}).sort("number", 1) if counts.get(s["number"])]
    body = detail.json()
    assert body["title"] == stored["title"] and body["synopsis"] == stored.get("synopsis", "")
    assert [(s["number"], s["name"], s["episode_count"]) for s in body["seasons"]] == seasons
    for number, _, _ in seasons:
        listed = await served.client.get(f"{API}/titles/{title_id}/episodes", headers=headers,
                                         params={"season": number, "limit": 50})
        assert listed.status_code == 200, listed.text
        expected = [(e["_id"], e["name"]) async for e in db.episodes.find(
            {"title_id": title_id, "season_number": number, "status": "published"}).sort("order_key", 1)]
        assert [(e["id"], e["name"]) for e in listed.json()["items"]] == expected


async def test_details_and_episode_pages_agree_with_the_store_through_a_small_lru(start_server) -> None:
    served = await start_server(NAMELESS_CATALOG_DETAILS_CACHED="6")
    cm = await content_manager(served)
    made = [await series(served, cm, seasons=2, episodes=2, title=f"Kept {n}") for n in range(3)]
    ids = [title["id"] for title, _ in made]
    headers = (await viewer_account(served))["headers"]

    async def all_agree(*order: int) -> None:
        """Read in this order, twice: the title edited last goes first, when its kept
        entries are the most recent, and the one to edit next goes last."""
        for _ in range(2):
            for i in order:
                await _agrees(served, headers, ids[i])

    await all_agree(1, 2, 0)
    title = (await served.client.get(f"{API}/admin/titles/{ids[0]}", headers=cm["headers"])).json()
    renamed = await served.client.patch(f"{API}/admin/titles/{ids[0]}", headers=cm["headers"],
                                        json={"title": "Kept renamed", "synopsis": "New", "version": title["version"]})
    assert renamed.status_code == 200, renamed.text
    await all_agree(0, 2, 1)
    season = await served.client.patch(f"{API}/admin/titles/{ids[1]}/seasons/1", headers=cm["headers"],
                                       json={"name": "The first"})
    assert season.status_code == 200, season.text
    await all_agree(1, 0, 2)
    added = await served.client.post(f"{API}/admin/episodes", headers=cm["headers"], json={
        "title_id": ids[2], "season": 1, "number": 3, "name": "S1E3", "runtime_s": 1000})
    assert added.status_code == 201, added.text
    await all_agree(2, 1, 0)
    episode = made[0][1][0]
    changed = await served.client.patch(f"{API}/admin/episodes/{episode['id']}", headers=cm["headers"],
                                        json={"name": "Renamed episode"})
    assert changed.status_code == 200, changed.text
    await all_agree(0, 1, 2)
