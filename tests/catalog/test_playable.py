"""What a newcomer meets first in the catalog: every published demo title plays, the
catalog says what can be played, publishing unplayable content is a deliberate choice,
ready media fills the title's asset and runtime, a title needs a maturity rating, an
upload needs a real content id, ratings have one shape, and the demo viewer's suggestions
follow from its own history."""

from __future__ import annotations

import pytest

from server.app.demo.catalog import load_demo
from server.app.demo.media import CLIP_SECONDS, DEMO_VIEWER, load_demo_media
from tests.catalog.helpers import API, content_manager, create_title, series
from tests.helpers import assert_error, bearer, make_staff
from tests.media.helpers import upload, wait_job

pytestmark = pytest.mark.asyncio


async def _ready(server, cm, content_id: str, clip) -> dict:
    up = await upload(server, cm, content_id, clip.read_bytes())
    done = await server.client.post(f"{API}/admin/uploads/{up['id']}/complete", headers=cm["headers"])
    assert done.status_code == 202, done.text
    assert (await wait_job(server, cm, done.json()["job_id"]))["status"] == "done"
    return (await server.client.get(f"{API}/admin/uploads/{up['id']}", headers=cm["headers"])).json()


async def test_every_published_demo_title_plays_and_says_so(server) -> None:
    services = server.runtime.services
    await services.plans.seed_defaults()
    created = await load_demo(services, viewers=6, clips=1)
    assert created["clips"] == 1 and created["playable"] == 12 + 1 + created["episodes"]
    media = await load_demo_media(services)
    login = await server.client.post(f"{API}/auth/login", json={"email": DEMO_VIEWER, "password": media["password"]})
    headers = bearer(login.json()["access_token"])
    titles = (await server.client.get(f"{API}/titles", headers=headers, params={"limit": 50})).json()["items"]
    assert len(titles) == 18 and all(t["playable"] for t in titles), [t["title"] for t in titles if not t["playable"]]
    for title in titles:
        content_id = title["id"]
        detail = (await server.client.get(f"{API}/titles/{content_id}", headers=headers)).json()
        assert detail["playable"] is True
        if title["type"] == "series":
            episodes = (await server.client.get(f"{API}/titles/{content_id}/episodes", headers=headers,
                                                params={"limit": 100})).json()["items"]
            assert episodes and all(e["playable"] and e["runtime_s"] == CLIP_SECONDS for e in episodes)
            content_id = episodes[0]["id"]
        else:
            assert title["runtime_s"] == CLIP_SECONDS
        started = await server.client.post(f"{API}/playback/{content_id}/start", json={}, headers=headers)
        assert started.status_code == 200, (title["title"], started.text)
        stopped = await server.client.delete(f"{API}/playback/sessions/{started.json()['session_id']}",
                                             headers=headers)
        assert stopped.status_code == 204
    home = (await server.client.get(f"{API}/home", headers=headers)).json()
    assert all(i["title"]["playable"] for row in home["rows"] for i in row["items"])

    # The demo viewer's row is made for it: reasons name what it watched.
    recommended = (await server.client.get(f"{API}/me/recommendations", headers=headers)).json()["items"]
    reasons = [r["reason"] for r in recommended]
    assert any(r.startswith("Because you watched ") for r in reasons), reasons
    popular = next(r for r in home["rows"] if r["id"] == "recommended")["items"]
    assert popular[0]["score"] > 0 and popular[0]["reason"] != "Popular on Nameless"

    again = await load_demo(services, viewers=6, clips=1)
    assert again["titles"] == 0 and again["clips"] == 0 and again["playable"] == 0


async def test_publishing_needs_ready_media_or_an_explicit_choice(server, clip) -> None:
    cm = await content_manager(server)
    movie = await create_title(server, cm, runtime_s=None)
    assert movie["playable"] is False and movie["media_asset_id"] is None
    refused = await server.client.post(f"{API}/admin/titles/{movie['id']}/publish", headers=cm["headers"])
    assert_error(refused, 409, "media_not_ready")
    anyway = await server.client.post(f"{API}/admin/titles/{movie['id']}/publish", headers=cm["headers"],
                                      json={"without_media": True})
    assert anyway.status_code == 200 and anyway.json()["playable"] is False

    ready_upload = await _ready(server, cm, movie["id"], clip)
    after = (await server.client.get(f"{API}/admin/titles/{movie['id']}", headers=cm["headers"])).json()
    assert after["media_asset_id"] == ready_upload["asset_id"] and after["playable"] is True
    assert after["runtime_s"] == 6  # the clip's duration, not what was typed at creation

    other = await create_title(server, cm)
    await _ready(server, cm, other["id"], clip)
    published = await server.client.post(f"{API}/admin/titles/{other['id']}/publish", headers=cm["headers"])
    assert published.status_code == 200 and published.json()["playable"] is True

    show, episodes = await series(server, cm, seasons=1, episodes=2)  # the helper publishes without_media
    assert show["playable"] is False
    await _ready(server, cm, episodes[0]["id"], clip)
    listed = (await server.client.get(f"{API}/admin/episodes", headers=cm["headers"],
                                      params={"title_id": show["id"]})).json()["items"]
    assert [(e["playable"], e["runtime_s"]) for e in listed] == [(True, 6), (False, 1000)]
    assert (await server.client.get(f"{API}/admin/titles/{show['id']}", headers=cm["headers"])).json()["playable"]


async def test_a_title_needs_a_maturity_rating_and_an_upload_a_real_content(server) -> None:
    cm = await content_manager(server)
    missing = await server.client.post(f"{API}/admin/titles", headers=cm["headers"],
                                       json={"type": "movie", "title": "Unrated"})
    error = assert_error(missing, 422, "maturity_rating_required")
    assert "maturity_rating" in error["details"]["fields"]
    nowhere = await server.client.post(f"{API}/admin/uploads", headers=cm["headers"], json={
        "content_id": "0" * 24, "filename": "clip.mp4", "size": 10, "sha256": "0" * 64})
    assert_error(nowhere, 404, "content_not_found")


async def test_staff_and_viewers_see_ratings_in_one_shape(server) -> None:
    cm = await content_manager(server)
    title = await create_title(server, cm)
    viewer_shape = {"average": None, "count": 0}
    assert title["rating"] == viewer_shape
    root = await make_staff(server, ["super_admin"])
    listed = (await server.client.get(f"{API}/admin/titles", headers=root["headers"])).json()["items"]
    assert listed[0]["rating"] == viewer_shape
