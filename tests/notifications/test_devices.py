"""Push devices: a token moves to another account only once the session that registered it
has ended, the move is audited, and no log line carries a push token."""

from __future__ import annotations

import json
import logging

import jwt
import pytest

from tests.helpers import assert_error, login, signup

TOKEN = "fcm:APA91bH-device-token_0123456789abcdef.xyz"


def session_of(account: dict) -> str:
    return jwt.decode(account["access_token"], options={"verify_signature": False})["sid"]


async def test_a_token_held_by_a_signed_in_account_cannot_be_taken(server) -> None:
    owner, other = await signup(server.client), await signup(server.client)
    path = f"/api/v1/me/devices/{TOKEN}"
    assert (await server.client.put(path, json={"platform": "android"}, headers=owner["headers"])).status_code == 204
    assert (await server.client.put(path, json={"platform": "android"}, headers=owner["headers"])).status_code == 204

    assert_error(await server.client.put(path, json={"platform": "android"}, headers=other["headers"]), 409,
                 "device_registered_elsewhere")
    # A fresh sign-in of the other account proves nothing about the device either.
    fresh = (await login(server.client, other["email"])).json()
    assert_error(await server.client.put(path, json={"platform": "ios"},
                                         headers={"Authorization": f"Bearer {fresh['access_token']}"}),
                 409, "device_registered_elsewhere")
    assert (await server.client.delete(path, headers=owner["headers"])).status_code == 204


async def test_after_the_owner_signs_out_the_token_moves_and_the_move_is_audited(server) -> None:
    owner, other = await signup(server.client), await signup(server.client)
    path = f"/api/v1/me/devices/{TOKEN}"
    assert (await server.client.put(path, json={"platform": "android"}, headers=owner["headers"])).status_code == 204
    owner_id = (await server.client.get("/api/v1/me", headers=owner["headers"])).json()["id"]
    signed_out = await server.client.delete(f"/api/v1/me/sessions/{session_of(owner)}", headers=owner["headers"])
    assert signed_out.status_code == 204

    assert (await server.client.put(path, json={"platform": "android"}, headers=other["headers"])).status_code == 204
    entry = await server.platform.db.audit.find_one({"action": "notifications.device_moved"})
    assert entry is not None and entry["target_id"] == owner_id
    assert TOKEN not in json.dumps(entry, default=str)

    again = (await login(server.client, owner["email"])).json()
    assert_error(await server.client.delete(path, headers={"Authorization": f"Bearer {again['access_token']}"}),
                 404, "device_not_found")
    assert (await server.client.delete(path, headers=other["headers"])).status_code == 204


async def test_push_tokens_never_reach_the_logs(server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    owner, other = await signup(server.client), await signup(server.client)
    path = f"/api/v1/me/devices/{TOKEN}"
    await server.client.put(path, json={"platform": "web"}, headers=owner["headers"])
    await server.client.put(path, json={"platform": "web"}, headers=other["headers"])
    await server.client.delete(path, headers=other["headers"])
    await server.client.delete(path, headers=owner["headers"])
    # The server's own records (the test's HTTP client logs its URLs itself).
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(getattr(r, "path", "").startswith("/api/v1/me/devices/") for r in records), "no request was logged"
    for record in records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in json.dumps(record.__dict__, default=str), record.__dict__


async def test_a_token_with_its_colon_percent_encoded_is_the_same_device(server) -> None:
    """Generated clients encode path parameters, and an FCM token holds a colon."""
    owner = await signup(server.client)
    encoded = f"/api/v1/me/devices/{TOKEN.replace(':', '%3A')}"
    assert (await server.client.put(encoded, json={"platform": "android"}, headers=owner["headers"])).status_code == 204
    assert (await server.client.delete(f"/api/v1/me/devices/{TOKEN}", headers=owner["headers"])).status_code == 204
    assert_error(await server.client.delete(encoded.replace("%3A", "%3a"), headers=owner["headers"]), 404,
                 "device_not_found")
