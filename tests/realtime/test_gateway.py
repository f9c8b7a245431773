"""The Socket.IO gateway with real python-socketio clients against the real app."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import jwt
import pytest
import socketio

from tests.helpers import assert_error, make_staff, signup

pytestmark = pytest.mark.asyncio


class Client:
    """A real Socket.IO client that records what it receives."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: dict[str, list[Any]] = {}
        self.refused: Any = None
        self.disconnected = asyncio.Event()

        @self.sio.on("connect_error", namespace="*")
        async def _refused(namespace: str, data: Any = None) -> None:
            self.refused = data

        @self.sio.on("disconnect", namespace="*")
        async def _gone(namespace: str, reason: Any = None) -> None:
            self.disconnected.set()

        @self.sio.on("*", namespace="*")
        async def _any(event: str, namespace: str, data: Any = None) -> None:
            self.received.setdefault(event, []).append(data)

    async def connect(self, url: str, token: str | None, namespace: str = "/", **kw: Any) -> bool:
        auth = {"token": token} if token else None
        try:
            await self.sio.connect(url, auth=auth, namespaces=[namespace], transports=["websocket"],
                                   wait_timeout=5, **kw)
            return True
        except socketio.exceptions.ConnectionError:
            return False

    async def wait_for(self, event: str, timeout: float = 3.0, count: int = 1) -> list[Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received.get(event, [])) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {event!r} within {timeout}s; got {list(self.received)}")
            await asyncio.sleep(0.02)
        return self.received[event]

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


@pytest.fixture
async def clients():
    made: list[Client] = []

    def make() -> Client:
        made.append(Client())
        return made[-1]

    yield make
    for c in made:
        await c.close()


def refused_code(client: Client) -> str:
    assert client.refused is not None, "expected a refusal"
    return client.refused["data"]["code"]


async def test_connect_needs_a_valid_token(server, clients) -> None:
    user = await signup(server.client)
    nobody = clients()
    assert not await nobody.connect(server.url, None)
    assert refused_code(nobody) == "token_missing"
    forged = clients()
    bad = jwt.encode({"sub": user["user"]["id"], "sid": "x"}, "k" * 32, algorithm="HS256", headers={"kid": "k1"})
    assert not await forged.connect(server.url, bad)
    assert refused_code(forged) == "invalid_token"
    good = clients()
    assert await good.connect(server.url, user["access_token"])


async def test_notification_is_stored_then_delivered_live(server, clients) -> None:
    user = await signup(server.client)
    phone, tablet = clients(), clients()
    assert await phone.connect(server.url, user["access_token"])
    assert await tablet.connect(server.url, user["access_token"])
    notifications = server.runtime.services.notifications
    created = await notifications.notify(user["user"]["id"], "release", "New on Nameless", "Season 2 is out",
                                         {"title_id": "t1"})
    for device in (phone, tablet):
        got = (await device.wait_for("notification"))[0]
        assert got == {"id": created["id"], "kind": "release", "title": "New on Nameless", "body": "Season 2 is out",
                       "data": {"title_id": "t1"}, "created_ms": created["created_ms"]}
    inbox = (await server.client.get("/api/v1/me/notifications", headers=user["headers"])).json()
    assert [n["id"] for n in inbox["items"]] == [created["id"]] and inbox["unread_count"] == 1
    ack = await phone.sio.call("notifications.read", {"ids": [created["id"]]}, timeout=5)
    assert ack == {"ok": True, "updated": 1}
    assert (await phone.sio.call("notifications.unread", {}, timeout=5)) == {"ok": True, "unread": 0}


async def test_offline_device_catches_up_from_the_inbox(server, clients) -> None:
    user = await signup(server.client)
    notifications = server.runtime.services.notifications
    sent = [await notifications.notify(user["user"]["id"], "account", f"n{i}", "b") for i in range(3)]
    device = clients()
    assert await device.connect(server.url, user["access_token"])
    inbox = (await server.client.get("/api/v1/me/notifications", params={"unread": "true"},
                                     headers=user["headers"])).json()
    assert {n["id"] for n in inbox["items"]} == {n["id"] for n in sent}
    resp = await server.client.post("/api/v1/me/notifications/read", json={"all": True}, headers=user["headers"])
    assert resp.json() == {"updated": 3}
    assert_error(await server.client.post("/api/v1/me/notifications/read", json={}, headers=user["headers"]), 400,
                 "validation_failed")


async def test_preferences_choose_channels(server, clients) -> None:
    user = await signup(server.client)
    prefs = (await server.client.get("/api/v1/me/notification-preferences", headers=user["headers"])).json()
    assert prefs["preferences"]["promotions"] == {"push": False, "email": False, "in_app": True}
    resp = await server.client.patch("/api/v1/me/notification-preferences", headers=user["headers"],
                                     json={"promotions": {"in_app": False, "push": True}})
    assert resp.json()["preferences"]["promotions"] == {"push": True, "email": False, "in_app": False}
    phone = await server.client.put("/api/v1/me/devices/fcm:phone-token-0123456789", json={"platform": "ios"},
                                    headers=user["headers"])
    assert phone.status_code == 204  # push is queued for users with a device
    device = clients()
    assert await device.connect(server.url, user["access_token"])
    result = await server.runtime.services.notifications.notify(user["user"]["id"], "promotions", "Deal", "50% off")
    assert result is None
    await asyncio.sleep(0.3)
    assert "notification" not in device.received
    push = await server.platform.db.outbox.find_one({"channel": "push", "to": user["user"]["id"]})
    assert push is not None and push["subject"] == "Deal"
    bad = await server.client.patch("/api/v1/me/notification-preferences", headers=user["headers"],
                                    json={"promotions": {"sms": True}})
    assert_error(bad, 400, "validation_failed")


async def test_revoking_a_session_disconnects_its_sockets_at_once(server, clients) -> None:
    user = await signup(server.client)
    other = (await server.client.post("/api/v1/auth/login", json={"email": user["email"],
                                                                  "password": "correct horse battery staple"})).json()
    victim, survivor = clients(), clients()
    assert await victim.connect(server.url, other["access_token"])
    assert await survivor.connect(server.url, user["access_token"])
    sid = jwt.decode(other["access_token"], options={"verify_signature": False})["sid"]
    started = asyncio.get_running_loop().time()
    assert (await server.client.delete(f"/api/v1/me/sessions/{sid}", headers=user["headers"])).status_code == 204
    await asyncio.wait_for(victim.disconnected.wait(), timeout=1.0)
    assert asyncio.get_running_loop().time() - started < 1.0
    assert victim.received["session.revoked"][0]["reason"] == "revoked_by_user"
    assert survivor.sio.connected
    again = clients()
    assert not await again.connect(server.url, other["access_token"])
    assert refused_code(again) == "session_revoked"


async def test_suspension_disconnects_and_refuses(server, clients) -> None:
    admin = await make_staff(server, ["admin"])
    user = await signup(server.client)
    device = clients()
    assert await device.connect(server.url, user["access_token"])
    await server.client.post(f"/api/v1/admin/users/{user['user']['id']}/suspend", json={"reason": "abuse"},
                             headers=admin["headers"])
    await asyncio.wait_for(device.disconnected.wait(), timeout=1.0)


async def test_per_user_connection_cap(server, clients) -> None:
    user = await signup(server.client)
    for _ in range(10):
        assert await clients().connect(server.url, user["access_token"])
    extra = clients()
    assert not await extra.connect(server.url, user["access_token"])
    assert refused_code(extra) == "too_many_connections"


async def test_events_are_validated_and_rate_limited(server, clients) -> None:
    user = await signup(server.client)
    device = clients()
    assert await device.connect(server.url, user["access_token"])
    bad = await device.sio.call("notifications.read", {"ids": {"$ne": None}}, timeout=5)
    assert bad["ok"] is False and bad["error"]["code"] == "validation_failed"
    not_object = await device.sio.call("notifications.read", "all", timeout=5)
    assert not_object["ok"] is False and not_object["error"]["code"] == "validation_failed"
    answers = await asyncio.gather(*[device.sio.call("notifications.unread", {}, timeout=10) for _ in range(80)])
    codes = {a["error"]["code"] if not a["ok"] else "ok" for a in answers}
    assert codes == {"ok", "rate_limited"}


async def test_oversize_payload_closes_the_socket(server, clients) -> None:
    user = await signup(server.client)
    device = clients()
    assert await device.connect(server.url, user["access_token"])
    await device.sio.emit("notifications.read", {"ids": ["x" * 24] * 5000, "pad": "y" * 100_000})
    await asyncio.wait_for(device.disconnected.wait(), timeout=3.0)


async def test_ops_channel_is_for_staff_and_streams_metrics(server, clients) -> None:
    viewer = await signup(server.client)
    admin = await make_staff(server, ["admin"])
    refused = clients()
    assert not await refused.connect(server.url, viewer["access_token"], namespace="/ops")
    assert refused_code(refused) == "forbidden"
    for _ in range(2):
        assert await clients().connect(server.url, viewer["access_token"])
    ops = clients()
    assert await ops.connect(server.url, admin["access_token"], namespace="/ops")
    snapshots = await ops.wait_for("metrics", timeout=4.0, count=2)
    latest = snapshots[-1]
    assert latest["connections"]["/"] == 2 and latest["connections"]["/ops"] == 1
    assert len(latest["processes"]) == 1 and {"rooms", "events_per_s", "emit_p99_ms"} <= set(latest)
    metrics = (await server.client.get("/metrics")).text
    assert 'nameless_socket_connections{namespace="/"} 2.0' in metrics
    assert 'nameless_socket_refused_total{code="forbidden",namespace="/ops"} 1.0' in metrics


async def test_two_processes_share_emits_and_revocations_through_redis(start_server, redis_url, clients) -> None:
    shared = {"REDIS_URL": redis_url, "NAMELESS_MONGO_DB": f"test_{uuid.uuid4().hex[:12]}"}
    a = await start_server(**shared)
    b = await start_server(**shared)
    user = await signup(a.client)
    on_b = clients()
    assert await on_b.connect(b.url, user["access_token"])
    await asyncio.sleep(0.2)  # let B's Redis subscription settle
    created = await a.runtime.services.notifications.notify(user["user"]["id"], "billing", "Paid", "Thanks")
    got = (await on_b.wait_for("notification"))[0]
    assert got["id"] == created["id"]
    admin = await make_staff(a, ["admin"])
    ops = clients()
    assert await ops.connect(a.url, admin["access_token"], namespace="/ops")
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        snaps = await ops.wait_for("metrics", timeout=5)
        if len(snaps[-1]["processes"]) == 2 or asyncio.get_running_loop().time() > deadline:
            break
        ops.received["metrics"].clear()
    assert len(snaps[-1]["processes"]) == 2 and snaps[-1]["connections"]["/"] == 1
    sid = jwt.decode(user["access_token"], options={"verify_signature": False})["sid"]
    await a.client.delete(f"/api/v1/me/sessions/{sid}", headers=user["headers"])
    await asyncio.wait_for(on_b.disconnected.wait(), timeout=1.0)


async def test_long_polling_connects_receives_and_acks(server) -> None:
    """Where websockets are blocked: the polling transport end to end (the app-wide XSRF
    check must not refuse Engine.IO's posts)."""
    user = await signup(server.client)
    device = Client()
    try:
        await device.sio.connect(server.url, auth={"token": user["access_token"]}, transports=["polling"],
                                 wait_timeout=5)
        assert device.sio.transport() == "polling"
        created = await server.runtime.services.notifications.notify(user["user"]["id"], "account", "Hi", "Polled")
        got = (await device.wait_for("notification"))[0]
        assert got["id"] == created["id"] and got["body"] == "Polled"
        assert await device.sio.call("notifications.unread", {}, timeout=5) == {"ok": True, "unread": 1}
    finally:
        await device.close()


JS_CLIENT = r"""
const { io } = require(process.env.CLIENT);
const socket = io(process.env.URL, { transports: ["polling"], auth: { token: process.env.TOKEN },
                                     reconnection: false, timeout: 5000 });
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
socket.on("connect", () => out({ event: "connect", transport: socket.io.engine.transport.name }));
socket.on("connect_error", (err) => { out({ event: "connect_error", message: err.message }); process.exit(2); });
socket.on("notification", async (n) => {
  const ack = await socket.timeout(5000).emitWithAck("notifications.unread", {});
  out({ event: "notification", notification: n, ack, transport: socket.io.engine.transport.name });
  socket.disconnect();
  process.exit(0);
});
setTimeout(() => { out({ event: "timeout" }); process.exit(3); }, 20000);
"""


async def test_official_js_client_over_long_polling(server, tmp_path) -> None:
    """The browser library the staff pages ship (socket.io-client), run by node, polling only."""
    import json
    import shutil
    from pathlib import Path

    client_lib = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "socket.io-client"
    node = shutil.which("node")
    if node is None or not client_lib.is_dir():
        pytest.fail("needs node and web/node_modules (make web/node_modules/.installed)", pytrace=False)
    user = await signup(server.client)
    script = tmp_path / "client.js"
    script.write_text(JS_CLIENT)
    proc = await asyncio.create_subprocess_exec(
        node, str(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"CLIENT": str(client_lib), "URL": server.url, "TOKEN": user["access_token"], "PATH": "/usr/bin:/bin"})
    try:
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
        assert first == {"event": "connect", "transport": "polling"}, first
        created = await server.runtime.services.notifications.notify(user["user"]["id"], "account", "JS", "Hello")
        second = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
        assert second["event"] == "notification", second
        assert second["notification"]["id"] == created["id"] and second["transport"] == "polling"
        assert second["ack"] == {"ok": True, "unread": 1}
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_foreign_origin_upgrades_are_refused(start_server) -> None:
    import tornado.httpclient
    import tornado.websocket

    served = await start_server(NAMELESS_CORS_ORIGINS="https://app.example.com")
    ws_url = served.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    for origin in ("https://evil.example", "http://127.0.0.1.evil.example"):
        request = tornado.httpclient.HTTPRequest(ws_url, headers={"Origin": origin})
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await asyncio.wait_for(tornado.websocket.websocket_connect(request), 5)
        assert refused.value.code == 403
        poll = await served.client.get("/socket.io/", params={"EIO": "4", "transport": "polling"},
                                       headers={"Origin": origin})
        assert poll.status_code == 400
    for origin in ("https://app.example.com", served.url):  # a configured origin, and the server's own pages
        request = tornado.httpclient.HTTPRequest(ws_url, headers={"Origin": origin})
        conn = await asyncio.wait_for(tornado.websocket.websocket_connect(request), 5)
        assert (await asyncio.wait_for(conn.read_message(), 5)).startswith("0{")
        conn.close()


async def test_a_socket_that_never_authenticates_is_closed_within_the_connect_timeout(server) -> None:
    import tornado.websocket

    from realtime.gateway import CONNECT_TIMEOUT

    ws_url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    conn = await tornado.websocket.websocket_connect(ws_url)
    started = asyncio.get_running_loop().time()
    assert (await conn.read_message()).startswith("0{")  # Engine.IO open; no Socket.IO connect follows
    while await asyncio.wait_for(conn.read_message(), CONNECT_TIMEOUT + 5) is not None:
        pass
    assert asyncio.get_running_loop().time() - started < CONNECT_TIMEOUT + 3
    # A polling session that never connects a namespace expires the same way.
    open_ = await server.client.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
    sid = __import__("json").loads(open_.text[1:])["sid"]
    deadline = asyncio.get_running_loop().time() + CONNECT_TIMEOUT + 5
    while True:
        poll = await server.client.get("/socket.io/", params={"EIO": "4", "transport": "polling", "sid": sid})
        if poll.status_code == 400 or poll.text.startswith("1"):
            break
        assert asyncio.get_running_loop().time() < deadline, poll.text
    assert asyncio.get_running_loop().time() - started < 2 * CONNECT_TIMEOUT + 5


async def test_demoted_admin_loses_ops_on_every_process(start_server, redis_url, clients) -> None:
    shared = {"REDIS_URL": redis_url, "NAMELESS_MONGO_DB": f"test_{uuid.uuid4().hex[:12]}"}
    a = await start_server(**shared)
    b = await start_server(**shared)
    boss = await make_staff(a, ["super_admin"])
    admin = await make_staff(a, ["admin", "support_agent"])
    on_a, on_b, own = clients(), clients(), clients()
    assert await on_a.connect(a.url, admin["access_token"], namespace="/ops")
    assert await on_b.connect(b.url, admin["access_token"], namespace="/ops")
    assert await own.connect(b.url, admin["access_token"])
    await on_b.wait_for("metrics")
    started = asyncio.get_running_loop().time()
    resp = await a.client.put(f"/api/v1/admin/users/{admin['id']}/roles", json={"roles": ["support_agent"]},
                              headers=boss["headers"])
    assert resp.status_code == 200, resp.text
    await asyncio.wait_for(asyncio.gather(on_a.disconnected.wait(), on_b.disconnected.wait()), timeout=1.5)
    assert asyncio.get_running_loop().time() - started < 1.5
    assert own.sio.connected  # the user's own channel needs no role
    again = clients()
    assert not await again.connect(b.url, admin["access_token"], namespace="/ops")
    assert refused_code(again) == "forbidden"


async def test_suspended_staff_lose_every_socket(server, clients) -> None:
    boss = await make_staff(server, ["super_admin"])
    admin = await make_staff(server, ["admin"])
    ops, own = clients(), clients()
    assert await ops.connect(server.url, admin["access_token"], namespace="/ops")
    assert await own.connect(server.url, admin["access_token"])
    resp = await server.client.post(f"/api/v1/admin/users/{admin['id']}/suspend", json={"reason": "left"},
                                    headers=boss["headers"])
    assert resp.status_code == 200, resp.text
    await asyncio.wait_for(asyncio.gather(ops.disconnected.wait(), own.disconnected.wait()), timeout=1.0)
