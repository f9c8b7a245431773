"""Missed-message recovery on `/`: a device reconnecting with the last notification it saw
is sent what it missed from the inbox, in order and once each, on any process, even while
new notifications keep arriving."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.helpers import NamespaceClient, eventually, signup

pytestmark = pytest.mark.asyncio


async def device(served, auth: dict) -> NamespaceClient:
    client = NamespaceClient("/")
    await client.sio.connect(served.url, auth=auth, transports=["websocket"], wait_timeout=5)
    return client


async def test_a_reconnecting_device_gets_what_it_missed_in_order_once_on_another_process(
        start_server, redis_url) -> None:
    shared = {"REDIS_URL": redis_url, "NAMELESS_MONGO_DB": f"test_{uuid.uuid4().hex[:12]}"}
    a, b = await start_server(**shared), await start_server(**shared)
    user = await signup(a.client)
    user_id, token = user["user"]["id"], user["access_token"]
    notify = a.runtime.services.notifications.notify
    first = await device(a, {"token": token})
    seen = [(await notify(user_id, "account", f"n{i}", "b"))["id"] for i in range(3)]
    await first.wait("notification", lambda d: d["id"] == seen[-1])
    await first.close()
    missed = [(await notify(user_id, "account", f"m{i}", "b"))["id"] for i in range(5)]

    sent: list[str] = []

    async def keep_sending() -> list[str]:
        for i in range(40):
            sent.append((await notify(user_id, "account", f"l{i}", "b"))["id"])
        return sent

    sending = asyncio.ensure_future(keep_sending())
    while len(sent) < 3:
        await asyncio.sleep(0.005)
    again = await device(b, {"token": token, "last_notification_id": seen[-1]})
    try:
        live = await sending
        await again.wait("notification", lambda d: d["id"] == live[-1])
        # A live copy of a replayed one delivered late by pub/sub is dropped, not sent twice.
        replayed = next(d for d in again.of("notification") if d["id"] == missed[0])
        await a.runtime.services.notification_feed.emit_to_user(user_id, "notification", replayed)
        fresh = (await notify(user_id, "account", "fresh", "b"))["id"]
        await again.wait("notification", lambda d: d["id"] == fresh)
        await asyncio.sleep(0.3)  # a late duplicate would land here
        assert [d["id"] for d in again.of("notification")] == missed + live + [fresh]
    finally:
        await again.close()


async def test_without_an_offset_or_with_a_foreign_one_nothing_is_replayed(server) -> None:
    user, stranger = await signup(server.client), await signup(server.client)
    notify = server.runtime.services.notifications.notify
    mine = await notify(user["user"]["id"], "account", "old", "b")
    theirs = await notify(stranger["user"]["id"], "account", "theirs", "b")
    await notify(user["user"]["id"], "account", "older news", "b")
    plain = await device(server, {"token": user["access_token"]})
    foreign = await device(server, {"token": user["access_token"], "last_notification_id": theirs["id"]})
    replayed = await device(server, {"token": user["access_token"], "last_notification_id": mine["id"]})
    try:
        assert [d["title"] for d in [await replayed.wait("notification")]] == ["older news"]
        await asyncio.sleep(0.3)
        assert plain.of("notification") == [] and foreign.of("notification") == []
        assert len(replayed.of("notification")) == 1
    finally:
        for client in (plain, foreign, replayed):
            await client.close()


async def test_sockets_connecting_together_each_get_their_own_catch_up_and_leave_nothing_behind(server) -> None:
    """The catch-up runs in each socket's connect handler, after its CONNECT packet."""
    user = await signup(server.client)
    notify = server.runtime.services.notifications.notify
    seen = await notify(user["user"]["id"], "account", "seen", "b")
    missed = [(await notify(user["user"]["id"], "account", f"m{i}", "b"))["id"] for i in range(3)]
    auths = [{"token": user["access_token"], **({"last_notification_id": seen["id"]} if i % 2 else {})}
             for i in range(10)]
    clients = await asyncio.gather(*(device(server, auth) for auth in auths))
    channel = server.runtime.services.gateway.sio.namespace_handlers["/"]
    try:
        for i, client in enumerate(clients):
            if i % 2:
                await client.wait("notification", lambda d: d["id"] == missed[-1])
        fresh = (await notify(user["user"]["id"], "account", "fresh", "b"))["id"]
        for client in clients:
            await client.wait("notification", lambda d: d["id"] == fresh)
        for i, client in enumerate(clients):
            assert [d["id"] for d in client.of("notification")] == (missed if i % 2 else []) + [fresh]
    finally:
        for client in clients:
            await client.close()
    await eventually(lambda: not (channel._held or channel._joining or channel._offsets or channel._replayed),
                     "no per-socket state left")
