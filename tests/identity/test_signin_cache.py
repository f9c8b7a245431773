"""The REST sign-in check is answered from each process's sign-in cache, and narrowing access
anywhere still holds at once everywhere: two app processes share Redis and the store, the
change is made on A, the cached check is on B. The cache lifetime is set far above the
wait of these tests, so only the invalidation (or the token's own expiry) can end an entry."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import jwt
import pytest

from tests.helpers import assert_error, bearer, eventually, make_staff, signup

pytestmark = pytest.mark.asyncio

LONG_CACHE = {"NAMELESS_SESSION_CACHE_SECONDS": "60"}


@pytest.fixture
async def pair(start_server, redis_url):
    shared = {"REDIS_URL": redis_url, "NAMELESS_MONGO_DB": f"test_{uuid.uuid4().hex[:12]}", **LONG_CACHE}
    return await start_server(**shared), await start_server(**shared)


def cached(served, token: str) -> bool:
    return served.runtime.services.sessions._cache.get(token) is not None


async def refused(served, path: str, headers: dict[str, str], status: int = 401) -> httpx.Response | None:
    resp = await served.client.get(path, headers=headers)
    return resp if resp.status_code == status else None


async def test_a_revocation_on_one_process_refuses_the_next_request_on_another(pair) -> None:
    a, b = pair
    user, other = await signup(a.client), await signup(a.client)
    for who in (user, other):
        assert (await b.client.get("/api/v1/me", headers=who["headers"])).status_code == 200
        assert cached(b, who["access_token"])  # B answers these tokens from its cache from now on
    sid = jwt.decode(user["access_token"], options={"verify_signature": False})["sid"]
    resp = await a.client.delete(f"/api/v1/me/sessions/{sid}", headers=user["headers"])
    assert resp.status_code == 204, resp.text
    assert_error(await a.client.get("/api/v1/me", headers=user["headers"]), 401, "session_revoked")
    resp = await eventually(lambda: refused(b, "/api/v1/me", user["headers"]), "B refuses the revoked session")
    assert_error(resp, 401, "session_revoked")
    assert (await b.client.get("/api/v1/me", headers=other["headers"])).status_code == 200
    assert cached(b, other["access_token"])  # another account's entry is kept


async def test_a_logout_on_one_process_refuses_the_next_request_on_another(pair) -> None:
    a, b = pair
    user = await signup(a.client)
    assert (await b.client.get("/api/v1/me", headers=user["headers"])).status_code == 200
    assert cached(b, user["access_token"])
    resp = await a.client.post("/api/v1/auth/logout", json={"refresh_token": user["refresh_token"]})
    assert resp.status_code == 204, resp.text
    resp = await eventually(lambda: refused(b, "/api/v1/me", user["headers"]), "B refuses the ended session")
    assert_error(resp, 401, "session_revoked")


async def test_a_suspension_on_one_process_refuses_the_next_request_on_another(pair) -> None:
    a, b = pair
    admin = await make_staff(a, ["admin"])
    user = await signup(a.client)
    assert (await b.client.get("/api/v1/me", headers=user["headers"])).status_code == 200
    assert cached(b, user["access_token"])
    resp = await a.client.post(f"/api/v1/admin/users/{user['user']['id']}/suspend", json={"reason": "abuse"},
                               headers=admin["headers"])
    assert resp.status_code == 200, resp.text
    resp = await eventually(lambda: refused(b, "/api/v1/me", user["headers"]), "B refuses the suspended account")
    assert resp.json()["error"]["code"] in ("session_revoked", "account_suspended")  # suspending ends its sessions


async def test_a_role_change_on_one_process_holds_at_the_next_request_on_another(pair) -> None:
    a, b = pair
    root = await make_staff(a, ["super_admin"])
    user = await signup(a.client)
    uid = user["user"]["id"]
    assert_error(await b.client.get("/api/v1/admin/users", headers=user["headers"]), 403, "forbidden")
    assert cached(b, user["access_token"])
    granted = await a.client.put(f"/api/v1/admin/users/{uid}/roles", json={"roles": ["admin"]},
                                 headers=root["headers"])
    assert granted.status_code == 200, granted.text
    await eventually(lambda: refused(b, "/api/v1/admin/users", user["headers"], 200), "B sees the new role")
    assert cached(b, user["access_token"])
    taken = await a.client.put(f"/api/v1/admin/users/{uid}/roles", json={"roles": []}, headers=root["headers"])
    assert taken.status_code == 200, taken.text
    resp = await eventually(lambda: refused(b, "/api/v1/admin/users", user["headers"], 403),
                            "B no longer grants the removed role")
    assert_error(resp, 403, "forbidden")


async def test_a_cached_token_is_refused_once_it_expires(start_server) -> None:
    served = await start_server(**LONG_CACHE)
    user = await signup(served.client)
    claims = jwt.decode(user["access_token"], options={"verify_signature": False})
    tokens = served.runtime.services.sessions._tokens
    issued = dt.datetime.now(dt.UTC) - tokens.ttl + dt.timedelta(seconds=2)  # expires in 2 s
    short = tokens.issue(claims["sub"], claims["sid"], issued)
    assert (await served.client.get("/api/v1/me", headers=bearer(short))).status_code == 200
    assert cached(served, short)
    resp = await eventually(lambda: refused(served, "/api/v1/me", bearer(short)), "the expired token is refused")
    assert_error(resp, 401, "invalid_token")
    assert (await served.client.get("/api/v1/me", headers=user["headers"])).status_code == 200


async def test_cold_checks_made_together_each_answer_for_their_own_token(pair) -> None:
    """B has never seen these tokens: their session and account reads arrive together and
    are read in batches, and each request still gets its own account, a revoked session
    among them its 401."""
    import asyncio

    a, b = pair
    users = [await signup(a.client) for _ in range(12)]
    revoked = users[5]
    sid = jwt.decode(revoked["access_token"], options={"verify_signature": False})["sid"]
    assert (await a.client.delete(f"/api/v1/me/sessions/{sid}", headers=revoked["headers"])).status_code == 204
    answers = await asyncio.gather(*(b.client.get("/api/v1/me", headers=u["headers"]) for u in users))
    for user, resp in zip(users, answers, strict=True):
        if user is revoked:
            assert_error(resp, 401, "session_revoked")
        else:
            assert resp.status_code == 200, resp.text
            assert resp.json()["email"] == user["email"]
