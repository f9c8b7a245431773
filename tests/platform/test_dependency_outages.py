"""A dependency that goes down answers the contract's 503 naming it, quickly, and the app
recovers when it comes back: the real app on loopback, over its own embedded database
(left unsupervised here, so the outage lasts until the test ends it) or its own
redis-server on a free port (never the shared one)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from config import load_settings
from server.app.runtime import Runtime
from storage.embedded_mongo import EmbeddedMongo
from tests.helpers import RedisServer, assert_error, eventually, make_staff, signup
from tests.realtime.test_gateway import Client


def settings(tmp_path: Path, **env: str):
    return load_settings({
        "NAMELESS_HOST": "127.0.0.1", "NAMELESS_PORT": "0", "NAMELESS_DATA_DIR": str(tmp_path / "app"),
        "NAMELESS_MONGO_DB": f"test_{uuid.uuid4().hex[:12]}", "NAMELESS_SECRET_KEY": "test-secret-key-" + "x" * 32,
        "NAMELESS_LOG_LEVEL": "WARNING", **env,
    })


@pytest.fixture
async def runtimes() -> AsyncIterator[list[Runtime]]:
    started: list[Runtime] = []
    yield started
    for runtime in started:
        await runtime.stop()


async def test_a_database_outage_answers_503_naming_it_and_recovers(tmp_path: Path, runtimes) -> None:
    database = EmbeddedMongo(tmp_path / "db", supervise=False)
    url = await asyncio.to_thread(database.start)
    try:
        runtime = Runtime(settings(tmp_path), mongo_url=url)
        runtimes.append(runtime)
        await runtime.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.port}", timeout=30) as api:
            user = await signup(api)
            socket_client = Client()
            assert await socket_client.connect(str(api.base_url), user["access_token"])

            os.kill(database.pid, signal.SIGKILL)
            started = time.monotonic()
            resp = await api.get("/api/v1/me", headers=user["headers"])
            assert time.monotonic() - started < 6, "a request waited far longer than the dependency timeout"
            assert_error(resp, 503, "database_unavailable")
            assert int(resp.headers["Retry-After"]) >= 1
            assert_error(await api.get("/api/v1/me/notifications", headers=user["headers"]), 503,
                         "database_unavailable")
            ack = await socket_client.sio.call("notifications.unread", {}, timeout=10)
            assert ack["ok"] is False and ack["error"]["code"] == "database_unavailable", ack
            assert (await api.get("/readyz")).status_code == 503
            assert (await api.get("/healthz")).status_code == 200

            await asyncio.to_thread(database.start)  # the same data dir and socket

            async def me_answers() -> bool:
                return (await api.get("/api/v1/me", headers=user["headers"])).status_code == 200

            await eventually(me_answers, "/api/v1/me after the database came back", timeout=15)
            assert (await api.get("/readyz")).status_code == 200
            ack = await socket_client.sio.call("notifications.unread", {}, timeout=10)
            assert ack["ok"] is True, ack
            await socket_client.close()
    finally:
        with contextlib.suppress(Exception):
            for runtime in runtimes:
                await runtime.stop()
            runtimes.clear()
        await asyncio.to_thread(database.stop)


async def test_a_redis_outage_answers_503_naming_it_and_live_notices_recover(
        tmp_path: Path, mongo_url: str, runtimes) -> None:
    own = RedisServer()
    own.start()
    try:
        runtime = Runtime(settings(tmp_path, REDIS_URL=own.url), mongo_url=mongo_url)
        runtimes.append(runtime)
        await runtime.start()
        served = type("Served", (), {"runtime": runtime, "platform": runtime.platform})()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.port}", timeout=30) as api:
            served.client = api
            user = await signup(api)
            me = (await api.get("/api/v1/me", headers=user["headers"])).json()
            admin = await make_staff(served, ["admin"])
            viewer = Client()
            assert await viewer.connect(str(api.base_url), user["access_token"])

            own.stop()
            started = time.monotonic()
            resp = await api.get("/api/v1/me", headers=user["headers"])
            assert time.monotonic() - started < 6, "a request waited far longer than the dependency timeout"
            assert_error(resp, 503, "cache_unavailable")
            assert int(resp.headers["Retry-After"]) >= 1
            assert (await api.get("/readyz")).status_code == 503

            own.start()

            async def me_answers() -> bool:
                return (await api.get("/api/v1/me", headers=user["headers"])).status_code == 200

            await eventually(me_answers, "/api/v1/me after Redis came back", timeout=15)

            # Live notices flow again once the Socket.IO manager has resubscribed; a notice
            # sent before that is still in the inbox, so keep sending until one arrives live.
            async def notice_arrives() -> bool:
                sent = await api.post(f"/api/v1/admin/users/{me['id']}/notifications",
                                      json={"title": "Back", "body": "Redis is back"}, headers=admin["headers"])
                assert sent.status_code == 201, sent.text
                with contextlib.suppress(AssertionError):
                    await viewer.wait_for("notification", timeout=1.0)
                    return True
                return False

            await eventually(notice_arrives, "a live notification after Redis came back", timeout=40)
            assert viewer.received["notification"][0]["body"] == "Redis is back"
            await viewer.close()
    finally:
        for runtime in runtimes:
            with contextlib.suppress(Exception):
                await runtime.stop()
        runtimes.clear()
        own.stop()
