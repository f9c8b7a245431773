"""Social sign-in against local JWKS and Graph API stand-ins, with the real verification."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fakes.providers import FB_APP_ID
from tests.helpers import PASSWORD, assert_error, bearer, signup

pytestmark = pytest.mark.asyncio


async def social(served, provider: str, token: str, **extra):
    key = "access_token" if provider == "facebook" else "id_token"
    return await served.client.post(f"/api/v1/auth/social/{provider}", json={key: token, **extra})


async def test_google_sign_in_creates_then_signs_in(social_server, providers) -> None:
    token = providers.id_token("google", "g-123", "Gina@Example.com", name="Gina")
    first = await social(social_server, "google", token)
    assert first.status_code == 201 and first.json()["created"] is True
    me = (await social_server.client.get("/api/v1/me", headers=bearer(first.json()["access_token"]))).json()
    assert me["email"] == "gina@example.com" and me["email_verified"] is True
    assert me["providers"] == ["google"] and me["sign_in_methods"] == ["google"]
    again = await social(social_server, "google", providers.id_token("google", "g-123", "gina@example.com"))
    assert again.status_code == 200 and again.json()["created"] is False
    me2 = (await social_server.client.get("/api/v1/me", headers=bearer(again.json()["access_token"]))).json()
    assert me2["id"] == me["id"]


async def test_apple_sign_in_with_nonce(social_server, providers) -> None:
    token = providers.id_token("apple", "a-1", "apple@example.com", nonce="n-42")
    assert_error(await social(social_server, "apple", token, nonce="other"), 401, "invalid_provider_token")
    ok = await social(social_server, "apple", token, nonce="n-42")
    assert ok.status_code == 201, ok.text


async def test_bad_id_tokens_are_refused(social_server, providers) -> None:
    now = dt.datetime.now(dt.UTC)
    bad = {
        "wrong audience": providers.id_token("google", "g-1", "x@example.com", aud="someone-else"),
        "wrong issuer": providers.id_token("google", "g-1", "x@example.com", iss="https://evil.example"),
        "expired": providers.id_token("google", "g-1", "x@example.com", iat=now - dt.timedelta(hours=2),
                                      exp=now - dt.timedelta(hours=1)),
        "signed by another key": providers.id_token("google", "g-1", "x@example.com", key=providers.rogue_key),
        "unknown key id": providers.id_token("google", "g-1", "x@example.com", kid="nope"),
        "apple token at google": providers.id_token("apple", "g-1", "x@example.com"),
        "not a jwt": "abc.def.ghi",
    }
    for name, token in bad.items():
        resp = await social(social_server, "google", token)
        assert resp.status_code == 401, name
        assert resp.json()["error"]["code"] == "invalid_provider_token", name
    assert await social_server.platform.db.users.count_documents({}) == 0


async def test_facebook_sign_in_uses_debug_token_and_appsecret_proof(social_server, providers) -> None:
    token = providers.facebook_token("fb-77", "fan@example.com")
    resp = await social(social_server, "facebook", token)
    assert resp.status_code == 201, resp.text
    paths = [r["path"] for r in providers.graph_requests]
    assert paths == ["debug_token", "me"]
    assert "appsecret_proof" in providers.graph_requests[1]
    for bad in (providers.facebook_token("fb-78", "a@example.com", valid=False),
                providers.facebook_token("fb-79", "b@example.com", app_id="999"),
                "EAAnot-issued"):
        assert_error(await social(social_server, "facebook", bad), 401, "invalid_provider_token")
    assert FB_APP_ID


async def test_existing_email_is_linked_only_after_proving_ownership(social_server, providers) -> None:
    owner = await signup(social_server.client, "owner@example.com")
    token = providers.id_token("google", "g-owner", "owner@example.com")
    resp = await social(social_server, "google", token)
    assert_error(resp, 409, "account_exists_link_required")
    linked = await social_server.client.post("/api/v1/me/links/google", json={"id_token": token},
                                             headers=owner["headers"])
    assert linked.status_code == 204, linked.text
    signed_in = await social(social_server, "google", providers.id_token("google", "g-owner", "owner@example.com"))
    assert signed_in.status_code == 200
    me = (await social_server.client.get("/api/v1/me", headers=bearer(signed_in.json()["access_token"]))).json()
    assert me["id"] == owner["user"]["id"] and me["sign_in_methods"] == ["password", "google"]


async def test_identity_linked_elsewhere_conflicts(social_server, providers) -> None:
    first = await social(social_server, "google", providers.id_token("google", "g-shared", "one@example.com"))
    assert first.status_code == 201
    other = await signup(social_server.client)
    resp = await social_server.client.post(
        "/api/v1/me/links/google", json={"id_token": providers.id_token("google", "g-shared", "one@example.com")},
        headers=other["headers"])
    assert_error(resp, 409, "identity_taken")


async def test_never_unlink_the_last_way_to_sign_in(social_server, providers) -> None:
    created = await social(social_server, "google", providers.id_token("google", "g-only", "only@example.com"))
    headers = bearer(created.json()["access_token"])
    assert_error(await social_server.client.delete("/api/v1/me/links/google", headers=headers), 409,
                 "last_sign_in_method")
    assert_error(await social_server.client.delete("/api/v1/me/links/apple", headers=headers), 404, "link_not_found")
    link = await social_server.client.post(
        "/api/v1/me/links/apple", json={"id_token": providers.id_token("apple", "a-only", "only@example.com")},
        headers=headers)
    assert link.status_code == 204
    assert (await social_server.client.delete("/api/v1/me/links/google", headers=headers)).status_code == 204
    me = (await social_server.client.get("/api/v1/me", headers=headers)).json()
    assert me["providers"] == ["apple"]
    assert_error(await social_server.client.delete("/api/v1/me/links/apple", headers=headers), 409,
                 "last_sign_in_method")


async def test_unconfigured_provider_is_503_naming_the_setting(server) -> None:
    resp = await server.client.post("/api/v1/auth/social/google", json={"id_token": "x.y.z"})
    err = assert_error(resp, 503, "provider_not_configured")
    assert "GOOGLE_CLIENT_IDS" in err["message"]
    resp = await server.client.post("/api/v1/auth/social/facebook", json={"access_token": "x"})
    assert "FACEBOOK_APP_ID" in assert_error(resp, 503, "provider_not_configured")["message"]
    assert_error(await server.client.post("/api/v1/auth/social/myspace", json={"id_token": "x"}), 404,
                 "route_not_found")


async def test_missing_token_field_is_400(social_server) -> None:
    resp = await social_server.client.post("/api/v1/auth/social/facebook", json={"id_token": "x"})
    assert assert_error(resp, 400, "validation_failed")["details"]["fields"] == {"access_token": "required"}
    assert PASSWORD


async def test_phone_verification_with_firebase_id_token(social_server, providers) -> None:
    user = await signup(social_server.client)
    other = await signup(social_server.client)
    token = providers.firebase_token("fb-uid-1", "+15551234567")
    resp = await social_server.client.post("/api/v1/me/phone", json={"firebase_id_token": token},
                                           headers=user["headers"])
    assert resp.status_code == 200 and resp.json()["phone"] == {"number": "+15551234567", "verified": True}
    me = (await social_server.client.get("/api/v1/me", headers=user["headers"])).json()
    assert me["phone"] == {"number": "+15551234567", "verified": True}
    taken = await social_server.client.post("/api/v1/me/phone", json={"firebase_id_token": token},
                                            headers=other["headers"])
    assert_error(taken, 409, "phone_taken")
    bad = {
        "another key": providers.firebase_token("u", "+15550000001", key=providers.rogue_key),
        "another project": providers.firebase_token("u", "+15550000001", aud="other-project"),
        "expired": providers.firebase_token("u", "+15550000001", exp=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
                                            iat=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)),
        "future auth_time": providers.firebase_token("u", "+15550000001", auth_time=int(
            (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).timestamp())),
    }
    for name, bad_token in bad.items():
        resp = await social_server.client.post("/api/v1/me/phone", json={"firebase_id_token": bad_token},
                                               headers=other["headers"])
        assert resp.status_code == 401, name
    email_token = providers.firebase_token("u2", None, provider="password")
    assert_error(await social_server.client.post("/api/v1/me/phone", json={"firebase_id_token": email_token},
                                                 headers=other["headers"]), 422, "phone_number_missing")


async def test_phone_unconfigured_is_503(server) -> None:
    user = await signup(server.client)
    resp = await server.client.post("/api/v1/me/phone", json={"firebase_id_token": "a.b.c"}, headers=user["headers"])
    assert "FIREBASE_PROJECT_ID" in assert_error(resp, 503, "phone_not_configured")["message"]
