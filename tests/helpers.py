"""Small helpers shared by the tests: the error-shape assertion, account set-up over HTTP,
a GET of a path exactly as written, waiting on a condition, a free port, a redis-server
of a test's own, and the filters a client sends."""

from __future__ import annotations

import asyncio
import http.client
import re
import socket
import subprocess
import time
import uuid
from typing import Any

import httpx
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

PASSWORD = "correct horse battery staple"


class Finds(CommandListener):
    """A pymongo listener keeping the filter of every `find` a client sends, and every command."""

    def __init__(self) -> None:
        self.filters: list[dict[str, Any]] = []
        self.commands: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.filters.append(dict(event.command.get("filter", {})))
        self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


def id_ranges(finds: Finds) -> list[dict[str, Any]]:
    """The recorded filters with a range on `_id`, which nx-27017 answers by reading the whole
    collection into Python."""
    ranges = {"$gt", "$gte", "$lt", "$lte"}
    return [f for f in finds.filters if isinstance(f.get("_id"), dict) and set(f["_id"]) & ranges]


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def signup(client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD,
                 **headers: str) -> dict[str, Any]:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    resp = await client.post("/api/v1/auth/signup", json={"email": email, "password": password,
                                                           "display_name": email.split("@")[0]},
                             headers=headers)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    body["email"] = email
    body["headers"] = bearer(body["access_token"])
    return body


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: Any) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password, **extra})


async def make_staff(served: Any, roles: list[str], email: str | None = None) -> dict[str, Any]:
    """A staff account created through the same service `run.py createsuperuser` uses."""
    email = email or f"staff-{uuid.uuid4().hex[:8]}@example.com"
    await served.runtime.services.accounts.create_user(email, "Staff", password=PASSWORD,
                                                       roles=[*roles, "viewer"], email_verified=True)
    resp = await login(served.client, email)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    body["email"] = email
    body["headers"] = bearer(body["access_token"])
    me = await served.client.get("/api/v1/me", headers=body["headers"])
    body["id"] = me.json()["id"]
    return body


async def eventually(check: Any, what: str = "condition", timeout: float = 20.0) -> Any:
    """The first truthy answer of `check()` (sync or async), polled until `timeout`: tests wait
    on conditions, never on fixed sleeps."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = check()
        if asyncio.iscoroutine(answer):
            answer = await answer
        if answer:
            return answer
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.02)


async def outbox_link(served: Any, email: str, kind: str) -> str:
    """The secret link of the newest email of `kind` to `email`, rendered as the mail
    integration renders it at send time (the stored message holds no secret)."""
    doc = await served.platform.db.outbox.find_one({"to": email, "kind": kind}, sort=[("created_at", -1)])
    assert doc is not None, f"no {kind} email to {email}"
    rendered = await served.runtime.services.outbox.render(doc)
    assert rendered is not None and rendered.link is not None, f"the {kind} email to {email} has no link to send"
    return rendered.link


async def raw_get(served, path: str) -> tuple[int, bytes]:
    """GET a path exactly as written (httpx would remove `.` segments before sending)."""
    status, _, body = await raw_fetch(served, path)
    return status, body


async def raw_fetch(served, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET a path exactly as written, with only the given headers; the body as sent (no
    decompression): (status, headers with lower-case names, body)."""

    def fetch() -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", served.runtime.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    return await asyncio.to_thread(fetch)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD, next_url: str = "/admin"):
    """The staff sign-in form, as a browser posts it (the form's CSRF token, the cookie)."""
    page = await client.get("/login", params={"next": next_url})
    assert page.status_code == 200
    token = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert token, page.text
    next_field = re.search(r'name="next" value="([^"]*)"', page.text).group(1)
    return await client.post("/login", data={"_xsrf": token.group(1), "email": email, "password": password,
                                             "next": next_field})


class NamespaceClient:
    """A real python-socketio client on one namespace that records, in order, every event
    it receives, and waits for one by condition."""

    def __init__(self, namespace: str) -> None:
        import socketio

        self.namespace = namespace
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []

        @self.sio.on("*", namespace=namespace)
        async def _any(event: str, data: Any = None) -> None:
            self.events.append((event, data))

    def of(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    async def wait(self, event: str, match=lambda data: True, timeout: float = 10.0) -> Any:
        """The first `event` whose data matches, waiting for it if needed."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for data in self.of(event):
                if match(data):
                    return data
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no matching {event!r} within {timeout}s; got {self.events[-5:]}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of this test's own, which it may stop and start again on one port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + 15
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.proc = None
