"""No stored document holds a usable secret link: the outbox keeps a message's link as a
purpose and a user, and the token is issued when the delivery step renders the message.
The database is scanned directly, every collection, through the app's own client."""

from __future__ import annotations

import json

from tests.helpers import assert_error, login, outbox_link, signup


async def everything_stored(served) -> str:
    db = served.platform.db
    dumped = []
    for name in await db.list_collection_names():
        dumped += [json.dumps(doc, default=str) async for doc in db[name].find({})]
    return "\n".join(dumped)


async def test_a_reset_request_stores_no_usable_link_and_the_rendered_one_works(server) -> None:
    user = await signup(server.client)
    resp = await server.client.post("/api/v1/auth/password/forgot", json={"email": user["email"]})
    assert resp.status_code == 202
    stored = await everything_stored(server)
    assert "token=" not in stored and "/reset-password" not in stored, "a stored document holds a reset link"
    queued = await server.platform.db.outbox.find_one({"to": user["email"], "kind": "reset_password"})
    assert queued["link"]["purpose"] == "reset_password" and "secret_link" not in queued

    first = (await outbox_link(server, user["email"], "reset_password")).split("token=")[1]
    link = await outbox_link(server, user["email"], "reset_password")  # a retried delivery
    token = link.split("token=")[1]
    assert link.startswith("http") and "/reset-password?token=" in link and token != first
    stored = await everything_stored(server)
    for secret in (first, token, link):
        assert secret not in stored, "a rendered token or link was written to the database"

    # Only the newest rendering is valid, and it resets the password end to end.
    assert_error(await server.client.post("/api/v1/auth/password/reset",
                                          json={"token": first, "password": "a brand new passphrase 42"}),
                 422, "invalid_token")
    done = await server.client.post("/api/v1/auth/password/reset",
                                    json={"token": token, "password": "a brand new passphrase 42"})
    assert done.status_code == 204, done.text
    assert (await login(server.client, user["email"], "a brand new passphrase 42")).status_code == 200
    assert token not in await everything_stored(server)


async def test_a_verification_email_stores_no_usable_link(server) -> None:
    user = await signup(server.client)
    assert "token=" not in await everything_stored(server)
    token = (await outbox_link(server, user["email"], "verify_email")).split("token=")[1]
    assert token not in await everything_stored(server)
    assert (await server.client.post("/api/v1/auth/email/verify", json={"token": token})).status_code == 204
    # Once verified, a message still waiting in the outbox is no longer worth sending.
    queued = await server.platform.db.outbox.find_one({"to": user["email"], "kind": "verify_email"})
    assert await server.runtime.services.outbox.render(queued) is None


async def test_staff_see_that_a_message_has_a_link_but_never_the_link(server) -> None:
    from tests.helpers import make_staff

    admin = await make_staff(server, ["admin"])
    user = await signup(server.client)
    await server.client.post("/api/v1/auth/password/forgot", json={"email": user["email"]})
    items = (await server.client.get("/api/v1/admin/outbox", params={"to": user["email"]},
                                     headers=admin["headers"])).json()["items"]
    reset = [m for m in items if m["kind"] == "reset_password"]
    assert reset and reset[0]["has_link"] is True and "token" not in json.dumps(reset)
