"""Helpers for the catalog tests: content created through the admin API, as a content
manager would, and viewers' profiles."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from server.catalog.viewers import Viewer
from tests.helpers import make_staff, signup

API = "/api/v1"


def from_now(**delta: float) -> str:
    """An ISO time that far from now (`days=2`, `hours=-1`), as a content manager would type
    a release date."""
    return (dt.datetime.now(dt.UTC) + dt.timedelta(**delta)).isoformat()


async def content_manager(served: Any) -> dict[str, Any]:
    return await make_staff(served, ["content_manager"])


async def category(served: Any, cm: dict[str, Any], slug: str, name: str | None = None,
                   kind: str = "genre") -> dict[str, Any]:
    resp = await served.client.post(f"{API}/admin/categories", headers=cm["headers"],
                                     json={"slug": slug, "name": name or slug.title(), "kind": kind})
    assert resp.status_code == 201, resp.text
    return resp.json()


async def create_title(served: Any, cm: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"type": "movie", "title": f"Title {uuid.uuid4().hex[:6]}", "maturity_rating": "13+",
            "runtime_s": 6000, **fields}
    resp = await served.client.post(f"{API}/admin/titles", headers=cm["headers"], json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def publish(served: Any, cm: dict[str, Any], title_id: str) -> dict[str, Any]:
    """Published on purpose without media: catalog tests are about metadata, not playback."""
    resp = await served.client.post(f"{API}/admin/titles/{title_id}/publish", headers=cm["headers"],
                                    json={"without_media": True})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def published_title(served: Any, cm: dict[str, Any], **fields: Any) -> dict[str, Any]:
    title = await create_title(served, cm, **fields)
    return await publish(served, cm, title["id"])


async def series(served: Any, cm: dict[str, Any], seasons: int = 2, episodes: int = 3,
                 **fields: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A published series with `seasons` x `episodes` episodes (runtime 1000 s each)."""
    title = await create_title(served, cm, type="series", runtime_s=None, **fields)
    made = []
    for season in range(1, seasons + 1):
        resp = await served.client.post(f"{API}/admin/titles/{title['id']}/seasons", headers=cm["headers"],
                                        json={"number": season})
        assert resp.status_code == 201, resp.text
        for number in range(1, episodes + 1):
            resp = await served.client.post(f"{API}/admin/episodes", headers=cm["headers"], json={
                "title_id": title["id"], "season": season, "number": number, "name": f"S{season}E{number}",
                "runtime_s": 1000})
            assert resp.status_code == 201, resp.text
            made.append(resp.json())
    return await publish(served, cm, title["id"]), made


async def viewer_account(served: Any) -> dict[str, Any]:
    """A signed-up viewer with `profile_id` (the first profile) and a `viewer` for services."""
    user = await signup(served.client)
    profiles = (await served.client.get(f"{API}/me/profiles", headers=user["headers"])).json()["items"]
    user["profile_id"] = profiles[0]["id"]
    user["viewer"] = Viewer(user_id=user["user"]["id"], profile_id=profiles[0]["id"], name=profiles[0]["name"])
    return user


async def quiet_viewer(served: Any) -> Viewer:
    """A real account and profile made through the account service, without a password (so
    no hashing) and without signing in: for viewers whose only role is their history."""
    user = await served.runtime.services.accounts.create_user(f"quiet-{uuid.uuid4().hex[:10]}@example.com", "Quiet",
                                                              password=None, email_verified=True)
    profile = (await served.runtime.services.profiles.list(str(user["_id"])))[0]
    return Viewer(user_id=str(user["_id"]), profile_id=profile["id"], name=profile["name"])


async def add_profile(served: Any, user: dict[str, Any], name: str, kids: bool = False) -> Viewer:
    resp = await served.client.post(f"{API}/me/profiles", headers=user["headers"], json={"name": name, "kids": kids})
    assert resp.status_code == 201, resp.text
    return Viewer(user_id=user["user"]["id"], profile_id=resp.json()["id"], kids=kids, name=name)


async def titles_of(served: Any, user: dict[str, Any], **params: Any) -> list[str]:
    """Every title id GET /titles lists for these parameters, following the cursor."""
    found: list[str] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        resp = await served.client.get(f"{API}/titles", headers=user["headers"], params=query)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        found += [t["id"] for t in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            return found
