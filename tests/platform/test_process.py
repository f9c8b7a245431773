"""The real `run.py` as a separate process: start, readiness, persistence across a
restart, graceful SIGTERM, bad settings, `--help`.

Each server runs with the embedded defaults (no MONGO_URL, no REDIS_URL) on a free
loopback port, with its data dir under the test's tmp_path. The working directory is
tmp_path too, so a developer's `.env` in the repository cannot leak into these tests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
RUN_PY = ROOT / "run.py"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def clean_env(**extra: str) -> dict[str, str]:
    """The inherited environment without any setting of ours, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("NAMELESS_") and k not in ("MONGO_URL", "REDIS_URL")
    }
    env.update(extra)
    return env


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited while we looked
            continue
        if text in cmdline:
            found.append((int(entry.name), cmdline.strip()))
    return found


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> dict:
        """Poll /readyz until it answers 200; returns its body."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"run.py exited with {self.proc.returncode} before ready:\n{self.stderr()}")
            try:
                resp = httpx.get(f"{self.url}/readyz", timeout=2)
                if resp.status_code == 200:
                    return resp.json()
                last = f"{resp.status_code} {resp.text}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        pytest.fail(f"run.py not ready within {timeout:.0f}s (last: {last}):\n{self.stderr()}")

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run.py still running {timeout:.0f}s after SIGTERM:\n{self.stderr()}")


@pytest.fixture
def launch(tmp_path: Path) -> Iterator:
    """Start `run.py` as a subprocess, the leader of its own process group (so a test can
    signal it together with its children: ffmpeg, the embedded database); every process
    started is killed at teardown if the test left it running."""
    started: list[Server] = []

    def start(data_dir: Path | None = None, port: int | None = None, **env: str) -> Server:
        data_dir = data_dir or tmp_path / "data"
        port = port or free_port()
        stderr_path = tmp_path / f"stderr{len(started)}.log"
        full_env = clean_env(
            NAMELESS_HOST="127.0.0.1",
            NAMELESS_PORT=str(port),
            NAMELESS_DATA_DIR=str(data_dir),
            **env,
        )
        with stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(RUN_PY)],
                cwd=tmp_path,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        server = Server(proc, port, data_dir, stderr_path)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()
        for pid, _ in processes_mentioning(str(server.data_dir)):
            os.kill(pid, signal.SIGKILL)


def run_py(*args: str, cwd: Path, timeout: float = 30.0, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_PY), *args],
        cwd=cwd,
        env=clean_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_serves_healthz_and_readyz(launch) -> None:
    server = launch()
    started = time.monotonic()
    ready = server.wait_ready()
    assert time.monotonic() - started < START_TIMEOUT
    assert ready["status"] == "ok"
    assert ready["checks"]["database"] == "up"
    resp = httpx.get(f"{server.url}/healthz", timeout=5)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    assert server.terminate() == 0


def test_data_survives_a_restart_and_sigterm_stops_everything(launch, tmp_path: Path) -> None:
    data_dir = tmp_path / "persist"
    first = launch(data_dir)
    instance_id = first.wait_ready()["instance_id"]
    assert isinstance(instance_id, str) and len(instance_id) >= 8
    # The embedded database is a child running on files under the data dir.
    assert processes_mentioning(str(data_dir)), "no embedded database process for this data dir"
    assert first.terminate() == 0, first.stderr()
    assert processes_mentioning(str(data_dir)) == [], "embedded database left running after SIGTERM"

    second = launch(data_dir)
    assert second.wait_ready()["instance_id"] == instance_id
    assert second.terminate() == 0, second.stderr()
    assert processes_mentioning(str(data_dir)) == []


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the timeout)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_sigterm_finishes_in_flight_request_and_refuses_new_connections(launch) -> None:
    server = launch(NAMELESS_SHUTDOWN_GRACE="10")
    server.wait_ready()
    # A request whose body has only half arrived: the handler has been entered (it
    # streams the body) and waits for the rest. A declared POST parses its body only once
    # all of it is read; refusals (unknown route, undeclared method) are sent from
    # prepare(), before any body is read, so they would never be in flight.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10\r\n\r\n"
            b'{"a": '
        )
        time.sleep(0.3)
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # nothing answered yet: the request is in flight
        sock.settimeout(10)

        server.proc.send_signal(signal.SIGTERM)
        # Once the signal is handled the listening socket is closed: new connections are
        # refused while the in-flight request is still waiting for its body.
        deadline = time.monotonic() + 5
        refused = False
        while time.monotonic() < deadline and not refused:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
                time.sleep(0.05)
            except ConnectionRefusedError:
                refused = True
        assert refused, "new connections still accepted 5 s after SIGTERM"
        assert server.proc.poll() is None, "exited without waiting for the in-flight request"

        sock.sendall(b"1234}")
        data = read_response(sock)
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), data[:300]
    assert json.loads(body)["error"]["code"] == "invalid_json"  # the 10 bytes sent: {"a": 1234
    # With nothing left in flight the drain ends at once, well before the grace period.
    assert server.terminate(timeout=8) == 0, server.stderr()
    assert processes_mentioning(str(server.data_dir)) == []


def test_bad_port_stops_at_once_with_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_py(cwd=tmp_path, NAMELESS_PORT="abc", NAMELESS_DATA_DIR=str(tmp_path / "data"))
    assert time.monotonic() - started < 15
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "NAMELESS_PORT" in lines[0]
    assert not (tmp_path / "data").exists(), "started anything before validating settings"


def test_bad_secret_key_is_named_but_not_echoed(tmp_path: Path) -> None:
    secret = "hunter2-TOO-SHORT"
    result = run_py(cwd=tmp_path, NAMELESS_SECRET_KEY=secret, NAMELESS_DATA_DIR=str(tmp_path / "data"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "NAMELESS_SECRET_KEY" in lines[0]
    assert secret not in result.stderr + result.stdout
    assert "hunter2" not in result.stderr + result.stdout


def test_help_lists_the_environment(tmp_path: Path) -> None:
    result = run_py("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("NAMELESS_PORT", "MONGO_URL", "REDIS_URL", "--port"):
        assert name in result.stdout, name


def test_a_hard_killed_server_leaves_nothing_that_blocks_the_next_start(launch, tmp_path: Path) -> None:
    data_dir = tmp_path / "crash"
    first = launch(data_dir)
    instance_id = first.wait_ready()["instance_id"]
    first.proc.kill()  # SIGKILL: no clean-up runs, the database child is orphaned
    first.proc.wait()
    assert processes_mentioning(str(data_dir)), "expected the orphaned database child"
    second = launch(data_dir)
    assert second.wait_ready()["instance_id"] == instance_id
    assert second.terminate() == 0, second.stderr()
    assert processes_mentioning(str(data_dir)) == []


def test_health_probes_are_never_rate_limited(launch) -> None:
    server = launch(NAMELESS_RATE_LIMIT_IP="3")
    server.wait_ready()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        codes = [client.get("/healthz").status_code for _ in range(10)]
        assert codes == [200] * 10
        api = [client.get("/api/v1/me").status_code for _ in range(5)]
        assert 429 in api
    assert server.terminate() == 0


async def test_two_server_processes_share_one_redis(launch, mongo_url: str, redis_url: str, tmp_path: Path) -> None:
    """Two real run.py processes on one database and one Redis: an emit made on one reaches a
    socket held by the other, and a session revoked on one closes its socket on the other."""
    import asyncio
    import uuid

    import socketio

    shared = {"MONGO_URL": mongo_url, "REDIS_URL": redis_url, "NAMELESS_MONGO_DB": f"proc_{uuid.uuid4().hex[:10]}",
              "NAMELESS_SECRET_KEY": "shared-secret-for-both-processes-0123456789"}
    a = launch(tmp_path / "a", **shared)
    b = launch(tmp_path / "b", **shared)
    a.wait_ready()
    b.wait_ready()
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as api:
        signed = (await api.post("/api/v1/auth/signup", json={
            "email": "two@example.com", "password": "correct horse battery staple", "display_name": "Two"})).json()
        token = signed["access_token"]
        received: list[dict] = []
        gone = asyncio.Event()
        client = socketio.AsyncClient(reconnection=False)
        client.on("session.revoked", lambda data: received.append({"revoked": data}))
        client.on("notification", lambda data: received.append({"notification": data}))
        client.on("disconnect", lambda *args: gone.set())
        await client.connect(b.url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
        await asyncio.sleep(0.3)
        # An emit made by process A (a staff notice) reaches the socket held by process B.
        admin_env = {**clean_env(**shared), "NAMELESS_DATA_DIR": str(tmp_path / "a"),
                     "NAMELESS_SUPERUSER_PASSWORD": "a long admin passphrase 1"}
        made = await asyncio.to_thread(
            subprocess.run, [sys.executable, str(RUN_PY), "createsuperuser", "--email", "root@example.com"],
            cwd=tmp_path, env=admin_env, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        root = (await api.post("/api/v1/auth/login", json={"email": "root@example.com",
                                                           "password": "a long admin passphrase 1"})).json()
        sent = await api.post(f"/api/v1/admin/users/{signed['user']['id']}/notifications",
                              json={"title": "Hello", "body": "From process A"},
                              headers={"Authorization": f"Bearer {root['access_token']}"})
        assert sent.status_code == 201, sent.text
        for _ in range(100):
            if any("notification" in r for r in received):
                break
            await asyncio.sleep(0.02)
        notes = [r["notification"] for r in received if "notification" in r]
        assert notes and notes[0]["body"] == "From process A" and notes[0]["kind"] == "account"
        started = time.monotonic()
        sid = jwt.decode(token, options={"verify_signature": False})["sid"]
        resp = await api.delete(f"/api/v1/me/sessions/{sid}", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 204
        await asyncio.wait_for(gone.wait(), timeout=2.0)
        assert time.monotonic() - started < 1.0
        revoked = [r["revoked"] for r in received if "revoked" in r]
        assert revoked and revoked[0]["reason"] == "revoked_by_user"
        if client.connected:
            await client.disconnect()
    assert a.terminate() == 0 and b.terminate() == 0


def test_logs_never_hold_url_credentials(launch) -> None:
    """Media tokens, push tokens and party invite codes in paths, Engine.IO session ids in socket URIs and signed
    cookie values stay out of everything the process writes to its log."""
    import secrets

    server = launch(NAMELESS_LOG_LEVEL="INFO")
    server.wait_ready()
    media_token = secrets.token_urlsafe(24) + "." + secrets.token_urlsafe(16)
    push_token = "push-" + secrets.token_hex(20)
    invite_code = secrets.token_urlsafe(12)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        email = f"logs-{secrets.token_hex(4)}@example.com"
        signed = client.post("/api/v1/auth/signup", json={"email": email, "password": "correct horse battery staple",
                                                          "display_name": "Logs"})
        assert signed.status_code == 201, signed.text
        auth = {"Authorization": f"Bearer {signed.json()['access_token']}"}
        assert client.get(f"/media/{media_token}/assets/a/v1/master.m3u8").status_code in (403, 404)
        assert client.put(f"/api/v1/me/devices/{push_token}", json={"platform": "android"},
                          headers=auth).status_code == 204
        assert client.get(f"/party/{invite_code}").status_code == 404
        assert client.get(f"/api/v1/parties/{invite_code}", headers=auth).status_code == 404
        opened = client.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        sid = json.loads(opened.text[1:])["sid"]
        poll = {"EIO": "4", "transport": "polling", "sid": sid}
        assert client.post("/socket.io/", params=poll, content=b"41").status_code == 200  # a refused connect
        client.post("/socket.io/", params=poll, content=b"1")  # close the Engine.IO session
        for _ in range(2):  # a stale session id: Engine.IO and Tornado both complain about it
            client.get("/socket.io/", params=poll)
            client.post("/socket.io/", params=poll, content=b"x")
        forged_cookie = "2|1:0|10:1700000000|16:nameless_session|8:" + secrets.token_urlsafe(12) + "|" + "ab" * 32
        client.get("/admin", headers={"Cookie": f"nameless_session={forged_cookie}"})
    assert server.terminate() == 0
    log = server.stderr()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    routes = {line.get("route") for line in lines if line.get("message") == "request"}
    assert {"MediaHandler", "DeviceHandler", "InvitePage", "InviteHandler"} <= routes, routes  # logged...
    cookie_parts = forged_cookie.split("|")
    for secret in (media_token, push_token, invite_code, sid, cookie_parts[4], cookie_parts[-1]):
        assert secret not in log, [line for line in log.splitlines() if secret in line]  # ...without credentials


def test_each_request_writes_one_json_access_line(launch) -> None:
    """The access log line, field by field, as an operator's log pipeline reads it."""
    server = launch(NAMELESS_LOG_LEVEL="INFO")
    server.wait_ready()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        ok = client.get("/healthz", headers={"X-Request-ID": "access-line-0001"})
        missing = client.get("/api/v1/no/such/thing")
        ok_again = client.get("/healthz")
    assert server.terminate() == 0
    lines = [json.loads(line) for line in server.stderr().splitlines() if line.startswith("{")]
    access_lines = [line for line in lines if line.get("message") == "request"]
    access = {line["request_id"]: line for line in access_lines}
    fields = ["ts", "level", "logger", "message", "request_id", "method", "path", "route", "status", "ms", "ip"]
    expected = [(ok, "/healthz", "HealthzHandler", 200), (missing, "/api/v1/no/such/thing", "NotFoundHandler", 404),
                (ok_again, "/healthz", "HealthzHandler", 200)]
    for resp, path, route, status in expected:
        line = access[resp.headers["x-request-id"]]
        assert list(line) == fields, line
        assert (line["level"], line["logger"], line["method"], line["path"], line["route"], line["status"],
                line["ip"]) == ("INFO", "nameless.http", "GET", path, route, status, "127.0.0.1")
        assert isinstance(line["ms"], float) and line["ms"] >= 0
        assert time.strptime(line["ts"][:19], "%Y-%m-%d %H:%M:%S")
    assert ok.headers["x-request-id"] == "access-line-0001"
    ids = [resp.headers["x-request-id"] for resp in (ok, missing, ok_again)]
    assert [sum(line["request_id"] == rid for line in access_lines) for rid in ids] == [1, 1, 1]
