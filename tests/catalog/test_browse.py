"""The catalog as viewers see it: visibility, kids profiles, paging stability, search,
filters, title detail, episodes, categories and home rows. Real app over HTTP."""

from __future__ import annotations

import pytest

from tests.catalog.helpers import (
    API,
    add_profile,
    category,
    content_manager,
    create_title,
    from_now,
    published_title,
    series,
    titles_of,
    viewer_account,
)
from tests.helpers import assert_error

pytestmark = pytest.mark.asyncio



async def test_only_published_titles_inside_their_window_are_visible(server) -> None:
    cm = await content_manager(server)
    viewer = await viewer_account(server)
    visible = await published_title(server, cm, title="Visible")
    windowed = await published_title(server, cm, title="Windowed", available_from=from_now(days=-1),
                                     available_until=from_now(days=1))
    draft = await create_title(server, cm, title="Draft")
    scheduled = await create_title(server, cm, title="Scheduled", publish_at=from_now(hours=1))
    archived = await published_title(server, cm, title="Archived")
    assert (await server.client.post(f"{API}/admin/titles/{archived['id']}/archive",
                                     headers=cm["headers"])).status_code == 200
    ended = await published_title(server, cm, title="Ended", available_until=from_now(minutes=-1))
    future = await published_title(server, cm, title="Not yet", available_from=from_now(days=2))
    assert scheduled["status"] == "scheduled" and draft["status"] == "draft"

    assert sorted(await titles_of(server, viewer)) == sorted([visible["id"], windowed["id"]])
    detail = await server.client.get(f"{API}/titles/{windowed['id']}", headers=viewer["headers"])
    assert detail.status_code == 200 and detail.json()["available_until"] is not None
    for hidden in (draft, scheduled, archived, ended, future):
        for path in (f"/titles/{hidden['id']}", f"/titles/{hidden['id']}/episodes",
                     f"/titles/{hidden['id']}/reviews"):
            assert_error(await server.client.get(API + path, headers=viewer["headers"]), 404, "title_not_found")
        if hidden is not scheduled:  # an announced title may be listed (tests/catalog/test_coming_soon.py)
            assert_error(await server.client.put(f"{API}/me/watchlist/{hidden['id']}", headers=viewer["headers"]),
                         404, "title_not_found")
        resp = await server.client.post(f"{API}/titles/{hidden['id']}/reviews", headers=viewer["headers"],
                                        json={"rating": 5, "text": "x"})
        assert_error(resp, 404, "title_not_found")
    assert_error(await server.client.get(f"{API}/titles/nope-not-an-id", headers=viewer["headers"]), 404,
                 "route_not_found")
    assert_error(await server.client.get(f"{API}/titles/{'0' * 24}", headers=viewer["headers"]), 404,
                 "title_not_found")
    assert_error(await server.client.get(f"{API}/titles"), 401, "not_authenticated")


async def test_kids_profiles_see_only_titles_within_their_rating(server) -> None:
    cm = await content_manager(server)
    viewer = await viewer_account(server)
    kids = await add_profile(server, viewer, "Kid", kids=True)
    await category(server, cm, "family")
    ids = {r: (await published_title(server, cm, title=f"Rated {r}", maturity_rating=r, genres=["family"]))["id"]
           for r in ("all", "7+", "13+", "18+")}
    unrated = await server.client.post(f"{API}/admin/titles", headers=cm["headers"],
                                       json={"type": "movie", "title": "Unrated"})
    assert_error(unrated, 422, "maturity_rating_required")  # never a silent default rating
    assert sorted(await titles_of(server, viewer)) == sorted(ids.values())
    assert sorted(await titles_of(server, viewer, profile_id=kids.profile_id)) == sorted([ids["all"], ids["7+"]])
    assert sorted(await titles_of(server, viewer, profile_id=kids.profile_id, q="rated")) == sorted(
        [ids["all"], ids["7+"]])
    for rating in ("13+", "18+"):
        resp = await server.client.get(f"{API}/titles/{ids[rating]}", headers=viewer["headers"],
                                       params={"profile_id": kids.profile_id})
        assert_error(resp, 404, "title_not_found")
    home = (await server.client.get(f"{API}/home", headers=viewer["headers"],
                                    params={"profile_id": kids.profile_id})).json()
    shown = {item["title"]["id"] for row in home["rows"] for item in row["items"]}
    assert shown == {ids["all"], ids["7+"]}


async def test_a_profile_of_another_account_is_not_found(server) -> None:
    alice, bob = await viewer_account(server), await viewer_account(server)
    for path in ("/titles", "/home", "/me/history", "/me/watchlist", "/me/recommendations"):
        resp = await server.client.get(API + path, headers=bob["headers"], params={"profile_id": alice["profile_id"]})
        assert_error(resp, 404, "profile_not_found")
    resp = await server.client.get(f"{API}/titles", headers=bob["headers"], params={"profile_id": "../x"})
    assert_error(resp, 400, "validation_failed")


async def test_paging_stays_stable_when_titles_are_added_between_pages(server) -> None:
    cm = await content_manager(server)
    viewer = await viewer_account(server)
    original = [(await published_title(server, cm, title=f"Old {n}"))["id"] for n in range(7)]
    for sort in ("new", "popular", "rating"):
        seen: list[str] = []
        cursor = None
        for page_number in range(10):
            params = {"limit": 3, "sort": sort, **({"cursor": cursor} if cursor else {})}
            body = (await server.client.get(f"{API}/titles", headers=viewer["headers"], params=params)).json()
            seen += [t["id"] for t in body["items"]]
            cursor = body["next_cursor"]
            if page_number == 0:  # new titles land ahead of the reader: they must not shift the pages
                for n in range(3):
                    await published_title(server, cm, title=f"New {sort} {n}")
            if not cursor:
                break
        assert len(seen) == len(set(seen)), f"duplicates with sort={sort}"
        assert set(original) <= set(seen), f"skipped titles with sort={sort}"
    assert_error(await server.client.get(f"{API}/titles", headers=viewer["headers"], params={"cursor": "!!"}),
                 400, "invalid_cursor")
    assert_error(await server.client.get(f"{API}/titles", headers=viewer["headers"], params={"limit": 101}),
                 400, "validation_failed")


async def test_search_matches_words_and_people_case_and_accent_insensitively(server) -> None:
    cm = await content_manager(server)
    viewer = await viewer_account(server)
    amelie = await published_title(server, cm, title="Le Fabuleux Destin d'Amélie", original_title="Amélie")
    matrix = await published_title(server, cm, title="The Matrix Reloaded",
                                   cast=[{"name": "Keanu Reeves", "character": "Neo"},
                                         {"name": "Zoë Straße"}],
                                   crew=[{"name": "Lana Wachowski", "job": "Director"}])
    other = await published_title(server, cm, title="Paper Boats")

    async def search(q: str) -> list[str]:
        return await titles_of(server, viewer, q=q)

    assert await search("amelie") == [amelie["id"]]
    assert await search("AMÉ") == [amelie["id"]]
    assert await search("fabul dest") == [amelie["id"]]
    assert await search("matr relo") == [matrix["id"]]
    assert await search("keanu") == [matrix["id"]]
    assert await search("REEV") == [matrix["id"]]
    assert await search("zoe strasse") == [matrix["id"]]
    assert await search("wachowski matrix") == [matrix["id"]]
    assert await search("matrix paper") == []
    assert await search("eloaded") == []  # prefixes only, not infixes
    assert await search("!!!") == []
    assert sorted(await search("  ")) == sorted([amelie["id"], matrix["id"], other["id"]])
    # A renamed title is found by its new name only.
    resp = await server.client.patch(f"{API}/admin/titles/{other['id']}", headers=cm["headers"],
                                     json={"title": "Origami Fleet"})
    assert resp.status_code == 200, resp.text
    assert await search("origami") == [other["id"]]
    assert await search("paper") == []


async def test_filters_sorts_and_categories(server) -> None:
    cm = await content_manager(server)
    viewer = await viewer_account(server)
    await category(server, cm, "drama", "Drama")
    await category(server, cm, "comedy", "Comedy")
    await category(server, cm, "staff-picks", "Staff picks", kind="collection")
    drama_movie = await published_title(server, cm, genres=["drama"], categories=["staff-picks"], languages=["fr"])
    drama_series, _ = await series(server, cm, seasons=1, episodes=1, genres=["drama", "comedy"])
    comedy = await published_title(server, cm, genres=["comedy"])
    assert await titles_of(server, viewer, genre="drama", type="movie") == [drama_movie["id"]]
    assert sorted(await titles_of(server, viewer, genre="comedy")) == sorted([drama_series["id"], comedy["id"]])
    assert await titles_of(server, viewer, type="series") == [drama_series["id"]]
    assert await titles_of(server, viewer, category="staff-picks") == [drama_movie["id"]]
    assert await titles_of(server, viewer, language="fr") == [drama_movie["id"]]
    assert await titles_of(server, viewer, sort="new") == [comedy["id"], drama_series["id"], drama_movie["id"]]
    assert_error(await server.client.get(f"{API}/titles", headers=viewer["headers"], params={"sort": "random"}),
                 400, "validation_failed")
    cats = (await server.client.get(f"{API}/categories")).json()["items"]
    assert {(c["slug"], c["kind"]) for c in cats} == {("drama", "genre"), ("comedy", "genre"),
                                                       ("staff-picks", "collection")}
    resp = await server.client.post(f"{API}/admin/titles", headers=cm["headers"],
                                    json={"type": "movie", "title": "X", "genres": ["western"],
                                          "maturity_rating": "13+"})
    assert_error(resp, 422, "unknown_genre")


async def test_title_detail_seasons_and_episodes_by_season(server) -> None:
    cm = await content_manager(server)
    viewer = await viewer_account(server)
    show, episodes = await series(server, cm, seasons=2, episodes=3, cast=[{"name": "Ada Byron"}])
    later = await server.client.post(f"{API}/admin/episodes", headers=cm["headers"], json={
        "title_id": show["id"], "season": 2, "number": 4, "name": "Finale", "publish_at": from_now(days=3)})
    assert later.status_code == 201 and later.json()["status"] == "scheduled"
    detail = (await server.client.get(f"{API}/titles/{show['id']}", headers=viewer["headers"])).json()
    assert detail["type"] == "series" and detail["cast"] == [{"name": "Ada Byron", "character": None}]
    assert [(s["number"], s["episode_count"]) for s in detail["seasons"]] == [(1, 3), (2, 3)]
    season2 = (await server.client.get(f"{API}/titles/{show['id']}/episodes", headers=viewer["headers"],
                                       params={"season": 2})).json()
    assert [(e["season"], e["number"]) for e in season2["items"]] == [(2, 1), (2, 2), (2, 3)]
    first = (await server.client.get(f"{API}/titles/{show['id']}/episodes", headers=viewer["headers"],
                                     params={"limit": 4})).json()
    rest = (await server.client.get(f"{API}/titles/{show['id']}/episodes", headers=viewer["headers"],
                                    params={"limit": 4, "cursor": first["next_cursor"]})).json()
    assert [e["id"] for e in first["items"] + rest["items"]] == [e["id"] for e in episodes]
    assert rest["next_cursor"] is None
    movie = await published_title(server, cm)
    movie_detail = (await server.client.get(f"{API}/titles/{movie['id']}", headers=viewer["headers"])).json()
    assert "seasons" not in movie_detail and movie_detail["rating"] == {"average": None, "count": 0}


async def test_home_has_the_contract_rows_in_order(server) -> None:
    cm = await content_manager(server)
    viewer = await viewer_account(server)
    await category(server, cm, "drama", "Drama")
    await category(server, cm, "empty", "Nothing here")
    movie = await published_title(server, cm, genres=["drama"])
    other = await published_title(server, cm, genres=["drama"])
    await server.runtime.services.history.record_progress(viewer["viewer"], movie["id"], 600, 6000)
    home = (await server.client.get(f"{API}/home", headers=viewer["headers"])).json()
    rows = {row["id"]: row for row in home["rows"]}
    assert [r["id"] for r in home["rows"]] == ["continue_watching", "recommended", "trending", "new_releases",
                                               "genre:drama"]
    assert [i["title"]["id"] for i in rows["continue_watching"]["items"]] == [movie["id"]]
    assert rows["continue_watching"]["items"][0]["progress"] == 0.1
    assert [i["title"]["id"] for i in rows["new_releases"]["items"]] == [other["id"], movie["id"]]
    assert all(isinstance(i["reason"], str) and i["reason"] for i in rows["recommended"]["items"])
    assert movie["id"] not in {i["title"]["id"] for i in rows["recommended"]["items"]}  # already started
    assert rows["genre:drama"]["title"] == "Drama"


async def test_a_query_string_is_validated_for_each_endpoint_and_each_time_it_is_refused(server) -> None:
    # Validated queries are kept by their text: the same text must still mean each
    # endpoint's own model, and a refused one is refused again.
    cm = await content_manager(server)
    viewer = await viewer_account(server)
    show, _ = await series(server, cm, seasons=1, episodes=1)
    for _ in range(2):
        listed = await server.client.get(f"{API}/titles", headers=viewer["headers"], params={"season": "x"})
        assert listed.status_code == 200 and [t["id"] for t in listed.json()["items"]] == [show["id"]]
        assert_error(await server.client.get(f"{API}/titles/{show['id']}/episodes", headers=viewer["headers"],
                                             params={"season": "x"}), 400, "validation_failed")
        assert_error(await server.client.get(f"{API}/titles", headers=viewer["headers"], params={"type": "x"}),
                     400, "validation_failed")
    movies = await server.client.get(f"{API}/titles", headers=viewer["headers"], params={"type": "movie"})
    assert movies.status_code == 200 and movies.json()["items"] == []
