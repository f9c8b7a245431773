"""Fixtures: the real app on a loopback port, over the embedded MongoDB server (or
MONGO_URL) and a real Redis; each test gets its own database."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from pymongo.errors import PyMongoError

from config import load_settings
from server.app.runtime import Runtime
from storage.embedded_mongo import EmbeddedMongo

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "var" / "test-artifacts" / "screenshots"


# A test still running after this long has its pending asyncio tasks printed with their
# stacks (a hang with an idle event loop shows nothing in a thread dump). It is not stopped.
TASK_DUMP_AFTER_S = 240.0


def _dump_pending_tasks(config: pytest.Config, name: str) -> None:
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n--- {name} still running after {TASK_DUMP_AFTER_S:.0f} s: pending asyncio tasks ---",
              file=sys.stderr, flush=True)
        for obj in gc.get_objects():
            if isinstance(obj, asyncio.Task) and not obj.done():
                print(repr(obj)[:300], file=sys.stderr)
                with contextlib.suppress(Exception):
                    obj.print_stack(limit=25, file=sys.stderr)
        sys.stderr.flush()


@pytest.fixture(autouse=True)
def _report_hangs(request: pytest.FixtureRequest):
    timer = threading.Timer(TASK_DUMP_AFTER_S, _dump_pending_tasks, args=(request.config, request.node.nodeid))
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    external = os.environ.get("MONGO_URL")
    if external:
        yield external
        return
    server = EmbeddedMongo(tmp_path_factory.mktemp("mongo"))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis does not answer at {REDIS_URL} ({exc}); start one or set REDIS_URL", pytrace=False)
    finally:
        client.close()
    return REDIS_URL


@dataclass
class Served:
    runtime: Runtime
    url: str
    client: httpx.AsyncClient

    @property
    def platform(self):
        return self.runtime.platform


StartServer = Callable[..., Awaitable[Served]]


@pytest.fixture
async def start_server(mongo_url: str, tmp_path: Path) -> AsyncIterator[StartServer]:
    """Start the real app on a free loopback port; keyword arguments are environment
    variables (use `REDIS_URL=...` for the Redis-backed mode)."""
    started: list[Served] = []

    async def start(**env: str) -> Served:
        base = {
            "NAMELESS_HOST": "127.0.0.1",
            "NAMELESS_PORT": "0",
            "NAMELESS_DATA_DIR": str(tmp_path / f"data{len(started)}"),
            "NAMELESS_MONGO_DB": f"test_{uuid.uuid4().hex[:12]}",
            "NAMELESS_SECRET_KEY": "test-secret-key-" + "x" * 32,
            "NAMELESS_LOG_LEVEL": "WARNING",
        }
        base.update(env)
        runtime = Runtime(load_settings(base), mongo_url=mongo_url)
        await runtime.start()
        url = f"http://127.0.0.1:{runtime.port}"
        served = Served(runtime, url, httpx.AsyncClient(base_url=url, timeout=10))
        started.append(served)
        return served

    yield start
    for served in started:
        await served.client.aclose()
        db_name = served.runtime.settings.mongo_db
        client = served.runtime.platform.mongo_client if served.runtime.platform else None
        if client is not None:
            with contextlib.suppress(PyMongoError):  # a test may have closed it on purpose
                await client.drop_database(db_name)
        await served.runtime.stop()


@pytest.fixture
async def server(start_server: StartServer) -> Served:
    """The app in its embedded defaults: no Redis."""
    return await start_server()


@pytest.fixture(params=["memory", "redis"])
async def any_server(request: pytest.FixtureRequest, start_server: StartServer) -> Served:
    """The app with in-process state, then with Redis: both must behave the same."""
    if request.param == "redis":
        return await start_server(REDIS_URL=request.getfixturevalue("redis_url"))
    return await start_server()


@pytest.fixture
async def providers():
    """Local stand-ins for Google's and Apple's JWKS and Facebook's Graph API."""
    from tests.fakes.providers import start_providers

    fake, http = await start_providers()
    yield fake
    http.stop()


@pytest.fixture
async def social_server(start_server, providers) -> Served:
    return await start_server(**providers.env())


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory):
    """Six seconds of ffmpeg's test pattern and a tone (640x480), made once per run."""
    from tests.media.helpers import make_clip

    return make_clip(tmp_path_factory.mktemp("clips"))


@pytest.fixture
async def browser():
    """Debian's Chromium, headless, driven by Playwright (its own browser download does not
    work here): the one launch every browser test uses."""
    from playwright.async_api import async_playwright

    assert shutil.which(CHROMIUM), "Debian's chromium is missing: `make test` installs it"
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        await chromium.close()


@pytest.fixture
def screenshots() -> Path:
    """Where browser tests leave screenshots for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
