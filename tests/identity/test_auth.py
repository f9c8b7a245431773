"""Accounts and sign-in over HTTP against the real app: flows and attacks."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import statistics
import time

import jwt
import pytest

from server.identity.tokens import ALGORITHM, AUDIENCE, ISSUER
from tests.helpers import PASSWORD, assert_error, bearer, login, outbox_link, signup

pytestmark = pytest.mark.asyncio


def token_keys(served) -> tuple[dict[str, bytes], str]:
    return served.runtime.settings.jwt_keyring(served.platform.secret_key)


def forge(served, claims: dict, *, key: bytes | None = None, alg: str = ALGORITHM, kid: str = "k1") -> str:
    keys, _ = token_keys(served)
    return jwt.encode(claims, key or keys[kid], algorithm=alg, headers={"kid": kid})


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def test_signup_returns_account_and_tokens(server) -> None:
    user = await signup(server.client, "New.User@Example.com")
    assert user["user"]["email"] == "new.user@example.com"
    assert user["user"]["roles"] == ["viewer"]
    assert user["user"]["email_verified"] is False
    assert user["expires_in"] == 900 and user["token_type"] == "Bearer"
    assert "password_hash" not in json.dumps(user)
    header = jwt.get_unverified_header(user["access_token"])
    assert header["alg"] == "HS256" and header["kid"] == "k1"
    me = await server.client.get("/api/v1/me", headers=user["headers"])
    assert me.status_code == 200 and me.json()["id"] == user["user"]["id"]
    stored = await server.platform.db.users.find_one({"email": "new.user@example.com"})
    assert stored["password_hash"].startswith("$argon2id$")


async def test_signup_conflicts_and_password_policy(server) -> None:
    await signup(server.client, "taken@example.com")
    resp = await server.client.post("/api/v1/auth/signup", json={"email": "TAKEN@example.com", "password": PASSWORD,
                                                                 "display_name": "x"})
    assert_error(resp, 409, "email_taken")
    for weak in ("short", "password123", "qwertyuiop", "weakweak@example.com"):
        resp = await server.client.post("/api/v1/auth/signup", json={"email": "weakweak@example.com",
                                                                     "password": weak, "display_name": "w"})
        err = assert_error(resp, 400, "weak_password")
        assert "password" in err["details"]["fields"]


async def test_login_same_answer_for_unknown_email_and_wrong_password(server) -> None:
    await signup(server.client, "known@example.com")
    wrong = await login(server.client, "known@example.com", "not the password at all")
    unknown = await login(server.client, "nobody@example.com", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    ok = await login(server.client, "known@example.com")
    assert ok.status_code == 200 and ok.json()["refresh_token"]


async def test_login_takes_similar_time_for_unknown_email(start_server) -> None:
    served = await start_server(NAMELESS_RATE_LIMIT_AUTH="100")
    await signup(served.client, "timing@example.com")

    async def timed(email: str) -> float:
        start = time.perf_counter()
        resp = await login(served.client, email, "wrong password here")
        assert resp.status_code == 401
        return time.perf_counter() - start

    known = statistics.median([await timed("timing@example.com") for _ in range(4)])
    unknown = statistics.median([await timed(f"ghost{i}@example.com") for i in range(4)])
    # Without the dummy argon2 verification an unknown email answers many times faster.
    assert unknown > known * 0.4, (known, unknown)


async def test_refresh_rotates_and_reuse_revokes_the_session(server) -> None:
    user = await signup(server.client)
    first = user["refresh_token"]
    resp = await server.client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert resp.status_code == 200
    second = resp.json()
    assert second["refresh_token"] != first
    assert (await server.client.get("/api/v1/me", headers=bearer(second["access_token"]))).status_code == 200
    # The thief (or the victim) presents the already-rotated token: the whole session ends.
    reuse = await server.client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert_error(reuse, 401, "refresh_token_reused")
    assert_error(await server.client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}),
                 401, "session_revoked")
    assert_error(await server.client.get("/api/v1/me", headers=bearer(second["access_token"])), 401,
                 "session_revoked")
    assert_error(await server.client.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"}), 401,
                 "invalid_refresh_token")


async def test_logout_ends_the_session(server) -> None:
    user = await signup(server.client)
    resp = await server.client.post("/api/v1/auth/logout", json={"refresh_token": user["refresh_token"]})
    assert resp.status_code == 204
    assert_error(await server.client.get("/api/v1/me", headers=user["headers"]), 401, "session_revoked")
    assert_error(await server.client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]}),
                 401, "refresh_token_reused")


async def test_sessions_list_and_revoke(server) -> None:
    user = await signup(server.client)
    phone = await login(server.client, user["email"])
    phone_sid = claims_of(phone.json()["access_token"])["sid"]
    listed = await server.client.get("/api/v1/me/sessions", headers=user["headers"])
    items = listed.json()["items"]
    assert len(items) == 2
    assert {i["id"] for i in items} >= {phone_sid}
    assert sum(i["current"] for i in items) == 1
    assert all({"device", "ip", "last_used_at"} <= set(i) for i in items)
    resp = await server.client.delete(f"/api/v1/me/sessions/{phone_sid}", headers=user["headers"])
    assert resp.status_code == 204
    assert_error(await server.client.get("/api/v1/me", headers=bearer(phone.json()["access_token"])), 401,
                 "session_revoked")
    assert (await server.client.get("/api/v1/me", headers=user["headers"])).status_code == 200


async def test_another_users_session_is_404(server) -> None:
    alice = await signup(server.client)
    bob = await signup(server.client)
    bob_sid = claims_of(bob["access_token"])["sid"]
    resp = await server.client.delete(f"/api/v1/me/sessions/{bob_sid}", headers=alice["headers"])
    assert_error(resp, 404, "session_not_found")
    assert_error(await server.client.delete("/api/v1/me/sessions/nope", headers=alice["headers"]), 404,
                 "session_not_found")
    assert (await server.client.get("/api/v1/me", headers=bob["headers"])).status_code == 200


async def test_forged_and_broken_tokens_are_refused(server) -> None:
    user = await signup(server.client)
    other = await signup(server.client)
    good = claims_of(user["access_token"])
    now = int(time.time())
    none_token = (
        base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode()).decode().rstrip("=")
        + "." + base64.urlsafe_b64encode(json.dumps(good).encode()).decode().rstrip("=") + "."
    )
    keys, _ = token_keys(server)
    header, _, signature = user["access_token"].split(".")
    tampered_payload = base64.urlsafe_b64encode(
        json.dumps({**good, "sub": other["user"]["id"]}).encode()).decode().rstrip("=")
    attacks = {
        "alg none": none_token,
        "another key": forge(server, good, key=b"k" * 32),
        "another algorithm": jwt.encode(good, keys["k1"], algorithm="HS512", headers={"kid": "k1"}),
        "unknown kid": forge(server, good, kid="k1") .replace(header, base64.urlsafe_b64encode(
            json.dumps({"alg": "HS256", "kid": "k9", "typ": "JWT"}).encode()).decode().rstrip("=")),
        "expired": forge(server, {**good, "iat": now - 3600, "nbf": now - 3600, "exp": now - 1800}),
        "not yet valid": forge(server, {**good, "iat": now + 3600, "nbf": now + 3600, "exp": now + 7200}),
        "tampered payload": f"{header}.{tampered_payload}.{signature}",
        "wrong audience": forge(server, {**good, "aud": "someone-else"}),
        "wrong issuer": forge(server, {**good, "iss": "evil"}),
        "garbage": "not.a.jwt",
    }
    for name, token in attacks.items():
        resp = await server.client.get("/api/v1/me", headers=bearer(token))
        assert resp.status_code == 401, name
        assert resp.json()["error"]["code"] == "invalid_token", name
    # A correctly signed token whose session does not exist is refused too.
    ghost = forge(server, {**good, "sid": "no-such-session"})
    assert_error(await server.client.get("/api/v1/me", headers=bearer(ghost)), 401, "session_revoked")
    # And the control: the untouched token works, so each refusal above is the defence.
    assert (await server.client.get("/api/v1/me", headers=user["headers"])).status_code == 200
    assert good["iss"] == ISSUER and good["aud"] == AUDIENCE


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/auth/login", {"email": {"$ne": None}, "password": "x"}, "email"),
        ("/api/v1/auth/login", {"email": "a@example.com", "password": {"$gt": ""}}, "password"),
        ("/api/v1/auth/login", {"email": "a@example.com", "password": "x", "otp": {"$ne": "1"}}, "otp"),
        ("/api/v1/auth/signup", {"email": "a@example.com", "password": PASSWORD, "display_name": {"$where": "1"}},
         "display_name"),
        ("/api/v1/auth/refresh", {"refresh_token": {"$ne": None}}, "refresh_token"),
        ("/api/v1/auth/logout", {"refresh_token": {"$regex": ".*"}}, "refresh_token"),
        ("/api/v1/auth/password/forgot", {"email": {"$ne": None}}, "email"),
        ("/api/v1/auth/password/reset", {"token": {"$ne": None}, "password": PASSWORD}, "token"),
        ("/api/v1/auth/email/verify", {"token": {"$gt": ""}}, "token"),
        ("/api/v1/auth/social/google", {"id_token": {"$ne": None}}, "id_token"),
    ],
)
async def test_nosql_operator_injection_is_400(server, path, body, field) -> None:
    resp = await server.client.post(path, json=body)
    err = assert_error(resp, 400, "validation_failed")
    assert field in err["details"]["fields"]


async def test_nosql_injection_in_authenticated_bodies(server) -> None:
    user = await signup(server.client)
    for path, method, body, field in [
        ("/api/v1/me", "PATCH", {"display_name": {"$set": {"roles": ["admin"]}}}, "display_name"),
        ("/api/v1/me/profiles", "POST", {"name": {"$ne": None}}, "name"),
        ("/api/v1/me/mfa/totp/confirm", "POST", {"otp": {"$ne": None}}, "otp"),
    ]:
        resp = await server.client.request(method, path, json=body, headers=user["headers"])
        err = assert_error(resp, 400, "validation_failed")
        assert field in err["details"]["fields"]


async def test_mass_assignment_on_patch_me_changes_nothing(server) -> None:
    user = await signup(server.client)
    resp = await server.client.patch("/api/v1/me", headers=user["headers"], json={
        "roles": ["super_admin"], "email": "evil@example.com", "email_verified": True, "status": "active",
        "password_hash": "x", "display_name": "Renamed",
    })
    assert resp.status_code == 200
    me = resp.json()
    assert me["roles"] == ["viewer"] and me["email"] == user["email"] and me["email_verified"] is False
    assert me["display_name"] == "Renamed"
    stored = await server.platform.db.users.find_one({"email": user["email"]})
    assert stored["roles"] == ["viewer"] and stored["password_hash"].startswith("$argon2id$")
    bad = await server.client.patch("/api/v1/me", headers=user["headers"], json={"preferences": {"roles": "admin"}})
    assert_error(bad, 400, "validation_failed")


async def test_brute_force_is_throttled_per_account_and_ip_without_locking_out_the_owner(start_server) -> None:
    served = await start_server(NAMELESS_TRUST_PROXY="true", NAMELESS_RATE_LIMIT_AUTH="100")
    user = await signup(served.client)
    attacker = {"X-Forwarded-For": "203.0.113.66"}
    for _ in range(5):
        resp = await served.client.post("/api/v1/auth/login", headers=attacker,
                                        json={"email": user["email"], "password": "guess guess guess"})
        assert_error(resp, 401, "invalid_credentials")
    locked = await served.client.post("/api/v1/auth/login", headers=attacker,
                                      json={"email": user["email"], "password": PASSWORD})
    assert_error(locked, 429, "too_many_attempts")
    assert int(locked.headers["retry-after"]) > 0
    owner = await served.client.post("/api/v1/auth/login", headers={"X-Forwarded-For": "198.51.100.7"},
                                     json={"email": user["email"], "password": PASSWORD})
    assert owner.status_code == 200, owner.text


async def test_auth_endpoints_rate_limited_per_ip(start_server) -> None:
    served = await start_server(NAMELESS_RATE_LIMIT_AUTH="3")
    for _ in range(3):
        await served.client.post("/api/v1/auth/password/forgot", json={"email": "x@example.com"})
    resp = await served.client.post("/api/v1/auth/login", json={"email": "x@example.com", "password": "x"})
    assert_error(resp, 429, "rate_limited")


async def test_password_reset_flow_ends_every_session(server) -> None:
    user = await signup(server.client)
    other_device = (await login(server.client, user["email"])).json()
    for email in (user["email"], "nobody@example.com"):
        resp = await server.client.post("/api/v1/auth/password/forgot", json={"email": email})
        assert resp.status_code == 202 and resp.json() == {"status": "accepted"}
    link = await outbox_link(server, user["email"], "reset_password")
    token = link.split("token=")[1]
    stored = await server.platform.db.one_time_tokens.find_one({"purpose": "reset_password"})
    assert token not in json.dumps(stored, default=str)  # only the hash is stored
    weak = await server.client.post("/api/v1/auth/password/reset", json={"token": token, "password": "password1"})
    assert_error(weak, 400, "weak_password")
    new_password = "a brand new passphrase 42"
    ok = await server.client.post("/api/v1/auth/password/reset", json={"token": token, "password": new_password})
    assert ok.status_code == 204
    for tokens in (user, other_device):
        assert_error(await server.client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401,
                     "session_revoked")
    again = await server.client.post("/api/v1/auth/password/reset", json={"token": token, "password": new_password})
    assert_error(again, 422, "invalid_token")
    assert_error(await login(server.client, user["email"]), 401, "invalid_credentials")
    assert (await login(server.client, user["email"], new_password)).status_code == 200


async def test_reset_token_expires(server) -> None:
    user = await signup(server.client)
    await server.client.post("/api/v1/auth/password/forgot", json={"email": user["email"]})
    token = (await outbox_link(server, user["email"], "reset_password")).split("token=")[1]
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    await server.platform.db.one_time_tokens.update_many({"purpose": "reset_password"}, {"$set": {"expires_at": past}})
    resp = await server.client.post("/api/v1/auth/password/reset",
                                    json={"token": token, "password": "fresh passphrase 9"})
    assert_error(resp, 422, "invalid_token")


async def test_email_verification_is_single_use(server) -> None:
    user = await signup(server.client)
    token = (await outbox_link(server, user["email"], "verify_email")).split("token=")[1]
    assert (await server.client.post("/api/v1/auth/email/verify", json={"token": token})).status_code == 204
    assert (await server.client.get("/api/v1/me", headers=user["headers"])).json()["email_verified"] is True
    assert_error(await server.client.post("/api/v1/auth/email/verify", json={"token": token}), 422, "invalid_token")


async def test_unauthenticated_requests_are_401(server) -> None:
    assert_error(await server.client.get("/api/v1/me"), 401, "not_authenticated")
    assert_error(await server.client.get("/api/v1/me", headers={"Authorization": "Basic abc"}), 401,
                 "not_authenticated")


async def test_concurrent_refreshes_of_one_token_consume_it_once_and_the_rest_end_the_session(server) -> None:
    """A refresh token is consumed atomically: of simultaneous presentations exactly one
    consumes it; every other one is a reuse (401 refresh_token_reused), which ends the
    session, as after theft. The consumer races those revocations, so it gets either the
    new pair or 401 session_revoked; either way nothing of the session survives."""
    user = await signup(server.client)
    presented = 5
    results = await asyncio.gather(*[
        server.client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
        for _ in range(presented)
    ])
    codes = [r.json()["error"]["code"] if r.status_code != 200 else "ok" for r in results]
    reused = [r for r in results if r.status_code == 401 and r.json()["error"]["code"] == "refresh_token_reused"]
    assert len(reused) == presented - 1, codes
    for refused in reused:
        assert_error(refused, 401, "refresh_token_reused")
    [consumer] = [r for r in results if r not in reused]
    if consumer.status_code == 200:
        pair = consumer.json()
        assert pair["refresh_token"] != user["refresh_token"]
        assert_error(await server.client.get("/api/v1/me", headers=bearer(pair["access_token"])), 401,
                     "session_revoked")
        assert_error(await server.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}),
                     401, "session_revoked")
    else:
        assert_error(consumer, 401, "session_revoked")
    assert_error(await server.client.get("/api/v1/me", headers=user["headers"]), 401, "session_revoked")


async def test_signing_keys_rotate_by_key_id(start_server) -> None:
    old = "old:" + "o" * 40
    served = await start_server(NAMELESS_JWT_KEYS=old)
    user = await signup(served.client)
    assert jwt.get_unverified_header(user["access_token"])["kid"] == "old"
    await served.runtime.stop()
    # The new key signs from now on; tokens signed with the old one stay valid until it is dropped.
    rotated = await start_server(NAMELESS_JWT_KEYS="new:" + "n" * 40 + "," + old,
                                 NAMELESS_MONGO_DB=served.runtime.settings.mongo_db)
    assert (await rotated.client.get("/api/v1/me", headers=user["headers"])).status_code == 200
    fresh = await rotated.client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert jwt.get_unverified_header(fresh.json()["access_token"])["kid"] == "new"
    db = served.runtime.settings.mongo_db
    dropped = await start_server(NAMELESS_JWT_KEYS="new:" + "n" * 40, NAMELESS_MONGO_DB=db)
    assert_error(await dropped.client.get("/api/v1/me", headers=user["headers"]), 401, "invalid_token")
