"""Reviews: one per profile and title, exact aggregates under concurrent writes, authors
own their reviews (others get 404), moderators hide and delete with an audit trail, and
text comes back as data, exactly as written."""

from __future__ import annotations

import asyncio

import pytest

from tests.catalog.helpers import API, add_profile, content_manager, published_title, viewer_account
from tests.helpers import assert_error, make_staff

pytestmark = pytest.mark.asyncio


async def _rating(server, user, title_id) -> dict:
    resp = await server.client.get(f"{API}/titles/{title_id}/reviews", headers=user["headers"],
                                   params={"limit": 100})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _stored_average(server, title_id) -> float:
    doc = await server.platform.db.titles.find_one({"_id": title_id})
    return doc["rating_avg"]


async def test_concurrent_reviews_from_many_profiles_give_the_exact_count_and_average(server) -> None:
    cm = await content_manager(server)
    title = await published_title(server, cm)
    writers = []
    for _ in range(4):
        user = await viewer_account(server)
        profiles = [user["profile_id"]] + [(await add_profile(server, user, f"P{n}")).profile_id for n in range(4)]
        writers += [(user, pid) for pid in profiles]
    ratings = [1 + n % 5 for n in range(len(writers))]

    async def post(user, profile_id, rating):
        return await server.client.post(f"{API}/titles/{title['id']}/reviews", headers=user["headers"],
                                        params={"profile_id": profile_id},
                                        json={"rating": rating, "text": f"rated {rating}"})

    results = await asyncio.gather(*(post(u, p, r) for (u, p), r in zip(writers, ratings, strict=True)))
    assert [r.status_code for r in results] == [201] * len(writers)
    body = await _rating(server, writers[0][0], title["id"])
    assert body["rating"] == {"count": 20, "average": round(sum(ratings) / 20, 2)}
    assert len(body["items"]) == 20
    assert await _stored_average(server, title["id"]) == pytest.approx(sum(ratings) / 20, abs=1e-4)

    # The same profile racing itself still gets exactly one review.
    racer = await viewer_account(server)
    again = await asyncio.gather(*(post(racer, racer["profile_id"], 5) for _ in range(6)))
    assert sorted(r.status_code for r in again) == [201] + [409] * 5
    assert_error(next(r for r in again if r.status_code == 409), 409, "review_exists")

    # Concurrent edits and deletions keep the aggregate equal to what is left.
    created = [r.json() for r in results]
    edits = [server.client.patch(f"{API}/reviews/{rev['id']}", headers=user["headers"], json={"rating": 5})
             for (user, _), rev in zip(writers[:10], created[:10], strict=True)]
    deletes = [server.client.delete(f"{API}/reviews/{rev['id']}", headers=user["headers"])
               for (user, _), rev in zip(writers[10:], created[10:], strict=True)]
    outcomes = await asyncio.gather(*edits, *deletes)
    assert [r.status_code for r in outcomes] == [200] * 10 + [204] * 10
    body = await _rating(server, racer, title["id"])
    assert body["rating"] == {"count": 11, "average": 5.0}  # ten edited to 5, plus the racer's 5
    assert await _stored_average(server, title["id"]) == pytest.approx(5.0)


async def test_review_input_is_validated_and_text_is_returned_as_data(server) -> None:
    cm = await content_manager(server)
    user = await viewer_account(server)
    title = await published_title(server, cm)
    url = f"{API}/titles/{title['id']}/reviews"
    for bad, field in (({"rating": 0}, "rating"), ({"rating": 6}, "rating"), ({"rating": "5"}, "rating"),
                       ({"rating": 4.5}, "rating"), ({"rating": 3, "text": "x" * 2001}, "text"),
                       ({"text": "no rating"}, "rating")):
        error = assert_error(await server.client.post(url, headers=user["headers"], json=bad), 400,
                             "validation_failed")
        assert field in error["details"]["fields"]
    text = '<script>alert("x")</script> & <b>bold</b>\n  Amélie 👍  '
    resp = await server.client.post(url, headers=user["headers"], json={"rating": 4, "text": text})
    assert resp.status_code == 201 and resp.headers["content-type"].startswith("application/json")
    assert resp.json()["text"] == text and resp.json()["mine"] is True
    listed = (await _rating(server, user, title["id"]))["items"][0]
    assert listed["text"] == text and listed["author"] == {"name": user["email"].split("@")[0]}
    assert "user_id" not in listed and "profile_id" not in listed
    other = await viewer_account(server)
    assert (await _rating(server, other, title["id"]))["items"][0]["mine"] is False


async def test_only_the_author_edits_and_moderators_hide_and_delete(server) -> None:
    cm = await content_manager(server)
    moderator = await make_staff(server, ["content_manager"])
    alice, bob = await viewer_account(server), await viewer_account(server)
    title = await published_title(server, cm)
    review = (await server.client.post(f"{API}/titles/{title['id']}/reviews", headers=alice["headers"],
                                       json={"rating": 2, "text": "meh"})).json()
    bob_review = (await server.client.post(f"{API}/titles/{title['id']}/reviews", headers=bob["headers"],
                                           json={"rating": 4, "text": "good"})).json()
    url = f"{API}/reviews/{review['id']}"

    # Another viewer gets a 404 for someone else's review, whatever the method.
    assert_error(await server.client.patch(url, headers=bob["headers"], json={"rating": 1}), 404, "review_not_found")
    assert_error(await server.client.delete(url, headers=bob["headers"]), 404, "review_not_found")
    assert_error(await server.client.patch(f"{API}/reviews/{'a' * 24}", headers=alice["headers"], json={}), 404,
                 "review_not_found")

    edited = await server.client.patch(url, headers=alice["headers"], json={"rating": 5, "text": "grew on me"})
    assert edited.status_code == 200 and edited.json()["rating"] == 5 and edited.json()["edited_at"]
    assert (await _rating(server, alice, title["id"]))["rating"] == {"count": 2, "average": 4.5}
    assert_error(await server.client.patch(url, headers=alice["headers"], json={"status": "hidden"}), 403,
                 "forbidden")
    assert_error(await server.client.patch(url, headers=moderator["headers"], json={"text": "censored"}), 403,
                 "not_author")

    hidden = await server.client.patch(url, headers=moderator["headers"], json={"status": "hidden"})
    assert hidden.status_code == 200 and hidden.json()["status"] == "hidden"
    body = await _rating(server, bob, title["id"])
    assert [i["id"] for i in body["items"]] == [bob_review["id"]] and body["rating"] == {"count": 1, "average": 4.0}
    shown = await server.client.patch(url, headers=moderator["headers"], json={"status": "visible"})
    assert shown.status_code == 200
    assert (await _rating(server, bob, title["id"]))["rating"] == {"count": 2, "average": 4.5}

    assert (await server.client.delete(f"{API}/reviews/{bob_review['id']}",
                                       headers=moderator["headers"])).status_code == 204
    assert (await server.client.delete(url, headers=alice["headers"])).status_code == 204
    assert (await _rating(server, bob, title["id"]))["rating"] == {"count": 0, "average": None}
    admin = await make_staff(server, ["admin"])
    audit = (await server.client.get(f"{API}/admin/audit", params={"actor_id": moderator["id"]},
                                     headers=admin["headers"])).json()["items"]
    assert [a["action"] for a in audit] == ["review.delete", "review.show", "review.hide"]
    assert audit[0]["details"]["text"] == "good" and audit[0]["target_id"] == bob_review["id"]


async def test_each_profile_of_an_account_reviews_once(server) -> None:
    cm = await content_manager(server)
    user = await viewer_account(server)
    kid = await add_profile(server, user, "Kid", kids=True)
    title = await published_title(server, cm, maturity_rating="7+")
    url = f"{API}/titles/{title['id']}/reviews"
    assert (await server.client.post(url, headers=user["headers"], json={"rating": 3})).status_code == 201
    assert (await server.client.post(url, headers=user["headers"], params={"profile_id": kid.profile_id},
                                     json={"rating": 5})).status_code == 201
    assert_error(await server.client.post(url, headers=user["headers"], json={"rating": 1}), 409, "review_exists")
    mature = await published_title(server, cm, maturity_rating="16+")
    resp = await server.client.post(f"{API}/titles/{mature['id']}/reviews", headers=user["headers"],
                                    params={"profile_id": kid.profile_id}, json={"rating": 5})
    assert_error(resp, 404, "title_not_found")
