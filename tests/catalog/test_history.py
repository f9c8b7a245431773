"""Watch history and continue watching from heartbeats (through the history service, as
playback will call it), the watchlist, and that both are private to their owner."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from server.catalog import rollups
from server.catalog.recommender import POPULAR_REASON
from tests.catalog.helpers import (
    API,
    add_profile,
    content_manager,
    published_title,
    quiet_viewer,
    series,
    viewer_account,
)
from tests.helpers import assert_error, eventually

pytestmark = pytest.mark.asyncio


async def _continue_watching(server, user, profile_id=None) -> list[dict]:
    params = {"profile_id": profile_id} if profile_id else {}
    home = (await server.client.get(f"{API}/home", headers=user["headers"], params=params)).json()
    return next(row for row in home["rows"] if row["id"] == "continue_watching")["items"]


async def test_movie_progress_and_completion_at_ninety_percent(server) -> None:
    cm = await content_manager(server)
    user = await viewer_account(server)
    history = server.runtime.services.history
    movie = await published_title(server, cm, runtime_s=6000)
    await history.record_progress(user["viewer"], movie["id"], 1200, 6000)
    assert await history.resume_position(user["profile_id"], movie["id"]) == 1200
    items = (await server.client.get(f"{API}/me/history", headers=user["headers"])).json()["items"]
    assert [(i["content_id"], i["position"], i["duration"], i["completed"]) for i in items] == [
        (movie["id"], 1200.0, 6000.0, False)]
    assert items[0]["title"]["id"] == movie["id"] and items[0]["finished_at"] is None
    [entry] = await _continue_watching(server, user)
    assert (entry["content_id"], entry["position"], entry["progress"], entry["up_next"]) == (
        movie["id"], 1200.0, 0.2, False)

    await history.record_progress(user["viewer"], movie["id"], 5399, 6000)  # 89.98 %: not yet
    assert (await _continue_watching(server, user))[0]["position"] == 5399.0
    done = await history.record_progress(user["viewer"], movie["id"], 5400, 6000)  # 90 %
    assert done["completed"] and done["state"] == "finished"
    assert await _continue_watching(server, user) == []
    assert await history.resume_position(user["profile_id"], movie["id"]) == 0.0
    item = (await server.client.get(f"{API}/me/history", headers=user["headers"])).json()["items"][0]
    assert item["completed"] is True and item["finished_at"] is not None
    # The duration falls back to the catalog's runtime, and a position past the end is clamped.
    clamped = await history.record_progress(user["viewer"], movie["id"], 99999, None)
    assert clamped["position"] == 6000.0 and clamped["duration"] == 6000.0
    # A title counts once per profile towards popularity, however many heartbeats.
    admin_view = (await server.client.get(f"{API}/admin/titles/{movie['id']}", headers=cm["headers"])).json()
    assert admin_view["popularity"] == 1


async def test_a_completed_episode_continues_with_the_next_one(server) -> None:
    cm = await content_manager(server)
    user = await viewer_account(server)
    history = server.runtime.services.history
    show, eps = await series(server, cm, seasons=2, episodes=2)  # S1E1 S1E2 S2E1 S2E2
    await history.record_progress(user["viewer"], eps[0]["id"], 300, 1000)
    [entry] = await _continue_watching(server, user)
    assert entry["title"]["id"] == show["id"] and entry["episode"]["id"] == eps[0]["id"]
    assert entry["position"] == 300.0 and not entry["up_next"]

    result = await history.record_progress(user["viewer"], eps[1]["id"], 950, 1000)  # end of season 1
    assert result["state"] == "up_next" and result["next_episode_id"] == eps[2]["id"]
    [entry] = await _continue_watching(server, user)
    assert (entry["content_id"], entry["episode"]["season"], entry["episode"]["number"]) == (eps[2]["id"], 2, 1)
    assert entry["position"] == 0.0 and entry["up_next"] and entry["duration"] == 1000.0

    await history.record_progress(user["viewer"], eps[3]["id"], 1000, 1000)  # the last episode
    assert await _continue_watching(server, user) == []
    history_items = (await server.client.get(f"{API}/me/history", headers=user["headers"])).json()["items"]
    assert [i["content_id"] for i in history_items] == [eps[3]["id"], eps[1]["id"], eps[0]["id"]]
    assert history_items[0]["episode"] == {"id": eps[3]["id"], "season": 2, "number": 2, "name": "S2E2"}
    page = (await server.client.get(f"{API}/me/history", headers=user["headers"], params={"limit": 2})).json()
    rest = (await server.client.get(f"{API}/me/history", headers=user["headers"],
                                    params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert [i["content_id"] for i in page["items"] + rest["items"]] == [i["content_id"] for i in history_items]


async def test_history_and_watchlist_belong_to_their_profile_and_account(server) -> None:
    cm = await content_manager(server)
    alice, bob = await viewer_account(server), await viewer_account(server)
    second = await add_profile(server, alice, "Second")
    history = server.runtime.services.history
    movie = await published_title(server, cm)
    await history.record_progress(alice["viewer"], movie["id"], 100, 6000)
    assert (await server.client.put(f"{API}/me/watchlist/{movie['id']}", headers=alice["headers"])).status_code == 204

    # Bob cannot read or change Alice's profile's history or list: no existence leak.
    for method, path in (("GET", "/me/history"), ("GET", "/me/watchlist"), ("PUT", f"/me/watchlist/{movie['id']}"),
                         ("DELETE", f"/me/watchlist/{movie['id']}")):
        resp = await server.client.request(method, API + path, headers=bob["headers"],
                                           params={"profile_id": alice["profile_id"]})
        assert_error(resp, 404, "profile_not_found")
    assert (await server.client.get(f"{API}/me/history", headers=bob["headers"])).json()["items"] == []
    assert (await server.client.get(f"{API}/me/watchlist", headers=bob["headers"])).json()["items"] == []
    # Alice's other profile has its own.
    params = {"profile_id": second.profile_id}
    assert (await server.client.get(f"{API}/me/history", headers=alice["headers"], params=params)).json()[
        "items"] == []
    assert await _continue_watching(server, alice, second.profile_id) == []
    mine = (await server.client.get(f"{API}/me/watchlist", headers=alice["headers"])).json()["items"]
    assert [i["title"]["id"] for i in mine] == [movie["id"]]
    assert_error(await server.client.get(f"{API}/me/history"), 401, "not_authenticated")


async def test_watchlist_adds_once_hides_archived_titles_and_removes(server) -> None:
    cm = await content_manager(server)
    user = await viewer_account(server)
    first, second = await published_title(server, cm), await published_title(server, cm)
    for title in (first, second, first):
        resp = await server.client.put(f"{API}/me/watchlist/{title['id']}", headers=user["headers"])
        assert resp.status_code == 204, resp.text
    items = (await server.client.get(f"{API}/me/watchlist", headers=user["headers"])).json()["items"]
    assert [i["title"]["id"] for i in items] == [second["id"], first["id"]]
    await server.client.post(f"{API}/admin/titles/{second['id']}/archive", headers=cm["headers"])
    items = (await server.client.get(f"{API}/me/watchlist", headers=user["headers"])).json()["items"]
    assert [i["title"]["id"] for i in items] == [first["id"]]
    assert (await server.client.delete(f"{API}/me/watchlist/{first['id']}", headers=user["headers"])).status_code == 204
    assert (await server.client.delete(f"{API}/me/watchlist/{first['id']}", headers=user["headers"])).status_code == 204
    assert (await server.client.get(f"{API}/me/watchlist", headers=user["headers"])).json()["items"] == []
    assert_error(await server.client.put(f"{API}/me/watchlist/{'f' * 24}", headers=user["headers"]), 404,
                 "title_not_found")


async def test_progress_written_on_one_process_reaches_the_home_page_of_another(start_server, redis_url) -> None:
    """Each process keeps a profile's progress rows; a write on A drops them on B too."""
    shared = {"REDIS_URL": redis_url, "NAMELESS_MONGO_DB": f"test_{uuid.uuid4().hex[:12]}"}
    a, b = await start_server(**shared), await start_server(**shared)
    cm = await content_manager(a)
    user = await viewer_account(a)
    movie = await published_title(a, cm, runtime_s=6000)
    history = a.runtime.services.history

    async def positions_on_b() -> list[float]:
        return [i["position"] for i in await _continue_watching(b, user)]

    await history.record_progress(user["viewer"], movie["id"], 1200, 6000)
    await eventually(lambda: _is(positions_on_b(), [1200.0]), "B shows the first position")
    await history.record_progress(user["viewer"], movie["id"], 3000, 6000)
    await eventually(lambda: _is(positions_on_b(), [3000.0]), "B shows the new position")


async def _is(answer, expected) -> bool:
    return await answer == expected


async def test_an_episode_edit_on_one_process_reaches_continue_watching_on_another(start_server, redis_url) -> None:
    """Episodes are kept per process by id; an edit on A drops them on A at once and on B
    with the catalog's change message."""
    shared = {"REDIS_URL": redis_url, "NAMELESS_MONGO_DB": f"test_{uuid.uuid4().hex[:12]}"}
    a, b = await start_server(**shared), await start_server(**shared)
    cm = await content_manager(a)
    user = await viewer_account(a)
    _, eps = await series(a, cm, seasons=1, episodes=2)
    await a.runtime.services.history.record_progress(user["viewer"], eps[0]["id"], 100, 1000)

    async def names(served) -> list[str]:
        return [i["episode"]["name"] for i in await _continue_watching(served, user)]

    original = eps[0].get("name")
    await eventually(lambda: _is(names(b), [original]), "B shows the episode")
    assert await names(a) == [original]
    resp = await a.client.patch(f"{API}/admin/episodes/{eps[0]['id']}", headers=cm["headers"],
                                json={"name": "Renamed Pilot"})
    assert resp.status_code == 200, resp.text
    assert await names(a) == ["Renamed Pilot"]
    await eventually(lambda: _is(names(b), ["Renamed Pilot"]), "B shows the new name")


async def test_home_personal_rows_drop_a_title_when_its_window_closes_with_nothing_else_changing(server) -> None:
    # The personal rows' text is kept per profile: a title leaving the profile's sight at
    # the clock (no write, no reload) must still leave both rows on the next request.
    cm = await content_manager(server)
    services = server.runtime.services
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
    closing = {"available_until": until.isoformat()}
    anchor = await published_title(server, cm, title="Anchor")
    companion = await published_title(server, cm, title="Companion", **closing)
    watching = await published_title(server, cm, title="Watching", **closing)
    for _ in range(4):
        other = await quiet_viewer(server)
        for title in (anchor, companion):
            await services.history.record_progress(other, title["id"], 5800, 6000)
    user = await viewer_account(server)
    await services.history.record_progress(user["viewer"], anchor["id"], 5900, 6000)
    await services.history.record_progress(user["viewer"], watching["id"], 1200, 6000)
    await rollups.recommend(services.rollup_sources)

    async def rows() -> tuple[list[str], list[str]]:
        resp = await server.client.get(f"{API}/home", headers=user["headers"])
        assert resp.status_code == 200, resp.text
        by_id = {row["id"]: row["items"] for row in resp.json()["rows"]}
        suggested = [i["title"]["id"] for i in by_id["recommended"] if i["reason"] != POPULAR_REASON]
        return [i["title"]["id"] for i in by_id["continue_watching"]], suggested

    for _ in range(2):  # the second answer is the kept text
        continuing, suggested = await rows()
        assert continuing == [watching["id"]] and companion["id"] in suggested
    assert dt.datetime.now(dt.UTC) < until, "the set-up outlasted the window: lengthen it"

    await eventually(lambda: dt.datetime.now(dt.UTC) >= until, "the end of the window", timeout=30)
    continuing, suggested = await rows()
    assert continuing == [] and companion["id"] not in suggested
