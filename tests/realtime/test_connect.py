"""Connecting at bare cost without loosening access: the per-process sign-in cache is
dropped on every process by revocations, suspensions and role changes, and the per-user
socket cap holds across processes."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import jwt
import pytest
import socketio

from tests.helpers import NamespaceClient, eventually, make_staff, signup

pytestmark = pytest.mark.asyncio


class Device(NamespaceClient):
    """A viewer's app on namespace `/`: records events, refusals and the disconnect."""

    def __init__(self) -> None:
        super().__init__("/")
        self.refused: Any = None
        self.gone = asyncio.Event()

        @self.sio.on("connect_error")
        async def _refused(data: Any = None) -> None:
            self.refused = data

        @self.sio.on("disconnect")
        async def _gone(reason: Any = None) -> None:
            self.gone.set()

    async def connect(self, url: str, auth: dict[str, Any]) -> bool:
        try:
            await self.sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)
            return True
        except socketio.exceptions.ConnectionError:
            return False

    def refusal(self) -> str:
        assert self.refused is not None, "expected a refusal"
        return self.refused["data"]["code"]


@pytest.fixture
async def devices():
    made: list[Device] = []

    def make() -> Device:
        made.append(Device())
        return made[-1]

    yield make
    for device in made:
        await device.close()


@pytest.fixture
async def pair(start_server, redis_url):
    shared = {"REDIS_URL": redis_url, "NAMELESS_MONGO_DB": f"test_{uuid.uuid4().hex[:12]}"}
    return await start_server(**shared), await start_server(**shared)


async def test_a_revocation_on_one_process_refuses_a_cached_connect_on_another(pair, devices) -> None:
    a, b = pair
    user = await signup(a.client)
    token = {"token": user["access_token"]}
    first, second = devices(), devices()
    assert await first.connect(b.url, token) and await second.connect(b.url, token)
    cache = b.runtime.services.sessions._cache
    assert len(cache) == 1  # the second connect was answered from B's cache
    sid = jwt.decode(user["access_token"], options={"verify_signature": False})["sid"]
    assert (await a.client.delete(f"/api/v1/me/sessions/{sid}", headers=user["headers"])).status_code == 204
    await asyncio.wait_for(first.gone.wait(), timeout=2.0)  # B has heard of it
    again = devices()
    assert not await again.connect(b.url, token)
    assert again.refusal() == "session_revoked"


async def test_a_suspension_on_one_process_refuses_a_cached_connect_on_another(pair, devices) -> None:
    a, b = pair
    admin = await make_staff(a, ["admin"])
    user = await signup(a.client)
    token = {"token": user["access_token"]}
    held = devices()
    assert await held.connect(b.url, token)
    resp = await a.client.post(f"/api/v1/admin/users/{user['user']['id']}/suspend", json={"reason": "abuse"},
                               headers=admin["headers"])
    assert resp.status_code == 200, resp.text
    await asyncio.wait_for(held.gone.wait(), timeout=2.0)
    again = devices()
    assert not await again.connect(b.url, token)
    assert again.refusal() in ("session_revoked", "account_suspended")


async def test_the_socket_cap_counts_every_process(pair, devices) -> None:
    a, b = pair
    user = await signup(a.client)
    token = {"token": user["access_token"]}
    held = []
    for i in range(10):
        device = devices()
        assert await device.connect((a if i % 2 else b).url, token), device.refused
        held.append(device)
    for served in (a, b):
        extra = devices()
        assert not await extra.connect(served.url, token)
        assert extra.refusal() == "too_many_connections"
    await held[0].close()  # a closed socket frees its slot for any process
    await eventually(lambda: devices().connect(a.url, token), "a connect after a slot was freed", timeout=5)


async def test_the_socket_cap_holds_when_one_user_connects_many_at_once(pair, devices) -> None:
    """Claims made together reach Redis in one batch; each still counts the ones before it."""
    a, b = pair
    user = await signup(a.client)
    token = {"token": user["access_token"]}
    crowd = [devices() for _ in range(16)]
    connected = await asyncio.gather(*(device.connect((a if i % 2 else b).url, token)
                                       for i, device in enumerate(crowd)))
    assert sum(connected) == 10
    assert {device.refusal() for device, ok in zip(crowd, connected, strict=True) if not ok} == {
        "too_many_connections"}


async def test_a_burst_of_connections_waits_in_the_listen_queue_while_the_process_is_busy(server) -> None:
    """After a restart every client reconnects at once: the kernel completes them while the
    process is busy (a SYN that finds the queue full is retried only 1, 3, 7, 15 s later)."""
    port = server.runtime.port
    opened: list[socket.socket] = []
    try:
        for _ in range(600):  # the loop is blocked meanwhile: nothing is accepted
            opened.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
    except TimeoutError:
        pass
    finally:
        for sock in opened:
            sock.close()
    assert len(opened) == 600
