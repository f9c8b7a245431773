"""Second factor (TOTP and recovery codes) and viewing profiles."""

from __future__ import annotations

import time

import pyotp
import pytest

from tests.helpers import PASSWORD, assert_error, login, signup

pytestmark = pytest.mark.asyncio


async def enable_totp(served, user) -> tuple[pyotp.TOTP, list[str]]:
    begin = await served.client.post("/api/v1/me/mfa/totp", headers=user["headers"])
    assert begin.status_code == 200, begin.text
    secret = begin.json()["secret"]
    assert begin.json()["otpauth_uri"].startswith("otpauth://totp/Nameless:")
    totp = pyotp.TOTP(secret)
    assert_error(await served.client.post("/api/v1/me/mfa/totp/confirm", json={"otp": "000000"},
                                          headers=user["headers"]), 422, "invalid_otp")
    confirm = await served.client.post("/api/v1/me/mfa/totp/confirm", json={"otp": totp.now()},
                                       headers=user["headers"])
    assert confirm.status_code == 200, confirm.text
    codes = confirm.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    return totp, codes


async def test_totp_login_needs_the_code(server) -> None:
    user = await signup(server.client)
    totp, _ = await enable_totp(server, user)
    stored = await server.platform.db.users.find_one({"email": user["email"]})
    assert totp.secret not in str(stored)  # encrypted at rest
    assert_error(await login(server.client, user["email"]), 401, "otp_required")
    assert_error(await login(server.client, user["email"], otp="123456"), 401, "otp_required")
    # The confirm code's time step is spent; the next step's code is within the allowed drift.
    code = totp.at(int(time.time()) + totp.interval)
    assert (await login(server.client, user["email"], otp=code)).status_code == 200
    replay = await login(server.client, user["email"], otp=code)
    assert_error(replay, 401, "otp_required")
    me = (await server.client.get("/api/v1/me", headers=user["headers"])).json()
    assert me["mfa"] == {"totp": True, "recovery_codes_left": 10}


async def test_recovery_codes_are_single_use(server) -> None:
    user = await signup(server.client)
    _, codes = await enable_totp(server, user)
    assert (await login(server.client, user["email"], otp=codes[0])).status_code == 200
    assert_error(await login(server.client, user["email"], otp=codes[0]), 401, "otp_required")
    me = (await server.client.get("/api/v1/me", headers=user["headers"])).json()
    assert me["mfa"]["recovery_codes_left"] == 9


async def test_disable_totp_needs_a_code(server) -> None:
    user = await signup(server.client)
    _, codes = await enable_totp(server, user)
    assert_error(await server.client.request("DELETE", "/api/v1/me/mfa/totp", json={"otp": "999999"},
                                             headers=user["headers"]), 422, "invalid_otp")
    resp = await server.client.request("DELETE", "/api/v1/me/mfa/totp", json={"otp": codes[1]},
                                       headers=user["headers"])
    assert resp.status_code == 204
    assert (await login(server.client, user["email"])).status_code == 200
    assert_error(await server.client.post("/api/v1/me/mfa/totp/confirm", json={"otp": "123456"},
                                          headers=user["headers"]), 409, "mfa_not_started")


async def test_profiles_limit_and_ownership(server) -> None:
    alice = await signup(server.client)
    bob = await signup(server.client)
    listed = (await server.client.get("/api/v1/me/profiles", headers=alice["headers"])).json()["items"]
    assert len(listed) == 1 and listed[0]["kids"] is False
    for i in range(4):
        resp = await server.client.post("/api/v1/me/profiles", json={"name": f"P{i}", "kids": i == 0},
                                        headers=alice["headers"])
        assert resp.status_code == 201, resp.text
    assert_error(await server.client.post("/api/v1/me/profiles", json={"name": "Six"}, headers=alice["headers"]),
                 409, "too_many_profiles")
    items = (await server.client.get("/api/v1/me/profiles", headers=alice["headers"])).json()["items"]
    assert len(items) == 5 and sum(p["kids"] for p in items) == 1
    target = items[1]["id"]
    # Bob cannot see, change or delete Alice's profile: it does not exist for him.
    assert_error(await server.client.patch(f"/api/v1/me/profiles/{target}", json={"name": "Mine"},
                                           headers=bob["headers"]), 404, "profile_not_found")
    assert_error(await server.client.delete(f"/api/v1/me/profiles/{target}", headers=bob["headers"]), 404,
                 "profile_not_found")
    renamed = await server.client.patch(f"/api/v1/me/profiles/{target}", json={"name": "Kid", "kids": True},
                                        headers=alice["headers"])
    assert renamed.status_code == 200 and renamed.json()["name"] == "Kid" and renamed.json()["kids"] is True
    assert (await server.client.delete(f"/api/v1/me/profiles/{target}", headers=alice["headers"])).status_code == 204
    bad = await server.client.post("/api/v1/me/profiles", json={"name": "X", "language": "<script>"},
                                   headers=alice["headers"])
    assert_error(bad, 400, "validation_failed")


async def test_last_profile_stays(server) -> None:
    user = await signup(server.client)
    only = (await server.client.get("/api/v1/me/profiles", headers=user["headers"])).json()["items"][0]
    assert_error(await server.client.delete(f"/api/v1/me/profiles/{only['id']}", headers=user["headers"]), 409,
                 "last_profile")


async def test_a_code_in_other_digits_is_a_wrong_code_not_a_crash(server) -> None:
    arabic = "١٢٣٤٥٦"  # six digits to str.isdigit, no TOTP code to pyotp
    user = await signup(server.client)
    assert (await server.client.post("/api/v1/me/mfa/totp", headers=user["headers"])).status_code == 200
    assert_error(await server.client.post("/api/v1/me/mfa/totp/confirm", json={"otp": arabic},
                                          headers=user["headers"]), 400, "validation_failed")
    await enable_totp(server, user)
    # The staff sign-in form passes the code as typed, without the API's field check.
    xsrf = (await server.client.get("/login")).cookies["_xsrf"]
    resp = await server.client.post("/login", data={"email": user["email"], "password": PASSWORD, "otp": arabic,
                                                     "_xsrf": xsrf})
    assert resp.status_code == 401 and "authenticator" in resp.text


async def test_a_null_cannot_empty_a_name(server) -> None:
    user = await signup(server.client)
    profile = (await server.client.get("/api/v1/me/profiles", headers=user["headers"])).json()["items"][0]
    path = f"/api/v1/me/profiles/{profile['id']}"
    err = assert_error(await server.client.patch(path, json={"name": None, "kids": None}, headers=user["headers"]),
                       400, "validation_failed")
    assert err["details"]["fields"] == {"name": "cannot be empty", "kids": "cannot be empty"}
    assert_error(await server.client.patch("/api/v1/me", json={"display_name": None}, headers=user["headers"]),
                 400, "validation_failed")
    cleared = await server.client.patch(path, json={"avatar": None}, headers=user["headers"])  # optional: clears
    assert cleared.status_code == 200 and cleared.json()["name"] == profile["name"]
