"""The embedded database shared by several real processes on one data dir, supervised by
its owner, private to its user, and durable across a hard kill.

Every process here is a real `run.py` (or the admin commands' own start path, the real
`Runtime` without HTTP) on the real nx-27017, with its data dir under the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.platform import test_process
from tests.platform.test_process import ROOT, RUN_PY, clean_env, processes_mentioning

launch = test_process.launch  # the fixture that starts and cleans up run.py processes

PASSWORD = "correct horse battery staple"
ADMIN_PASSWORD = "a long admin passphrase 1"

# What `run.py createsuperuser` and `run.py demo` do before their work: start the runtime
# without HTTP on the data dir. It holds the database until a line arrives on stdin.
HOLDER = f"""
import asyncio, sys
sys.path.insert(0, {str(ROOT)!r})
from config import load_settings
from server.app.runtime import Runtime

async def main():
    runtime = Runtime(load_settings())
    await runtime.start(serve_http=False)
    print("owner" if runtime.embedded.owner else "user", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await runtime.platform.db.meta.find_one({{"_id": "instance"}})  # its database still works
    await runtime.stop()
    print("stopped", flush=True)

asyncio.run(main())
"""


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what} not within {timeout:.0f}s (last: {last!r})")


def signup(url: str, email: str | None = None) -> dict:
    email = email or f"u-{uuid.uuid4().hex[:10]}@example.com"
    resp = httpx.post(f"{url}/api/v1/auth/signup", json={"email": email, "password": PASSWORD,
                                                         "display_name": "U"}, timeout=30)
    assert resp.status_code == 201, resp.text
    return {"email": email, "headers": {"Authorization": f"Bearer {resp.json()['access_token']}"}}


def me_status(url: str, headers: dict) -> int:
    try:
        return httpx.get(f"{url}/api/v1/me", headers=headers, timeout=10).status_code
    except httpx.HTTPError:
        return -1


def owner_pid(data_dir: Path) -> int | None:
    try:
        return json.loads((data_dir / "mongo" / "owner.json").read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


def child_pid(data_dir: Path) -> int:
    return json.loads((data_dir / "mongo" / "owner.json").read_text())["child_pid"]


def test_an_admin_command_uses_the_running_servers_database(launch, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = launch(data_dir)
    server.wait_ready()
    user = signup(server.url)
    database = child_pid(data_dir)

    made = subprocess.run(
        [sys.executable, str(RUN_PY), "createsuperuser", "--email", "root@example.com"],
        cwd=tmp_path, env=clean_env(NAMELESS_DATA_DIR=str(data_dir), NAMELESS_SUPERUSER_PASSWORD=ADMIN_PASSWORD),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90,
    )
    assert made.returncode == 0, made.stderr

    # The server's database was neither stopped nor replaced, and it holds the new account.
    assert child_pid(data_dir) == database and owner_pid(data_dir) == server.proc.pid
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    assert me_status(server.url, user["headers"]) == 200
    login = httpx.post(f"{server.url}/api/v1/auth/login",
                       json={"email": "root@example.com", "password": ADMIN_PASSWORD}, timeout=30)
    assert login.status_code == 200, login.text
    assert server.terminate() == 0, server.stderr()
    assert processes_mentioning(str(data_dir)) == []


def test_a_server_started_while_a_command_holds_the_database_keeps_it(launch, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=tmp_path,
                              env=clean_env(NAMELESS_DATA_DIR=str(data_dir)),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "owner", holder.stderr.read()
        database = child_pid(data_dir)
        server = launch(data_dir)
        server.wait_ready()
        user = signup(server.url)
        assert child_pid(data_dir) == database, "the server replaced the database a command was using"

        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0, holder.stderr.read()
        assert holder.stdout.readline().strip() == "stopped"

        # The server takes the database over without a gap and answers throughout.
        wait_until(lambda: owner_pid(data_dir) == server.proc.pid, 15, "the server owning the database")
        assert child_pid(data_dir) == database, "the database was stopped and started again"
        for _ in range(10):
            assert me_status(server.url, user["headers"]) == 200
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert server.terminate() == 0, server.stderr()
    assert processes_mentioning(str(data_dir)) == [], "the adopted database outlived its new owner"


def test_the_server_restarts_its_database_after_it_is_killed(launch, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = launch(data_dir)
    instance = server.wait_ready()["instance_id"]
    user = signup(server.url)
    first = child_pid(data_dir)

    os.kill(first, signal.SIGKILL)
    statuses: list[int] = []

    def recovered() -> bool:
        statuses.append(me_status(server.url, user["headers"]))
        return statuses[-1] == 200 and child_pid(data_dir) != first

    wait_until(recovered, 30, "/api/v1/me answering again after the database was killed", interval=0.05)
    assert set(statuses) <= {200, 503}, statuses  # an outage is a 503, never a 500
    assert server.wait_ready()["instance_id"] == instance
    assert server.terminate() == 0, server.stderr()
    assert processes_mentioning(str(data_dir)) == []


def test_no_acknowledged_signup_is_lost_when_everything_is_killed(launch, tmp_path: Path) -> None:
    """60 sign-ups, each answered 201; then SIGKILL for the server and for its database
    child (which runs in a session of its own, so there is no one process group to
    signal), nothing flushed or closed; after a restart on the same data dir every one of
    the 60 signs in."""
    data_dir = tmp_path / "data"
    server = launch(data_dir, NAMELESS_RATE_LIMIT_AUTH="1000")
    server.wait_ready()
    with ThreadPoolExecutor(4) as pool:  # argon2 on both cores; each one asserted 201
        emails = [made["email"] for made in pool.map(lambda _: signup(server.url), range(60))]
    database = child_pid(data_dir)
    server.proc.kill()
    os.kill(database, signal.SIGKILL)
    server.proc.wait()
    wait_until(lambda: not processes_mentioning(str(data_dir)), 10, "every process gone")

    again = launch(data_dir, NAMELESS_RATE_LIMIT_AUTH="1000")
    again.wait_ready()

    def login(email: str) -> int:
        return httpx.post(f"{again.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD},
                          timeout=60).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = dict(zip(emails, pool.map(login, emails), strict=True))
    lost = [email for email, status in statuses.items() if status != 200]
    assert not lost, f"{len(lost)} of 60 acknowledged sign-ups cannot sign in: {sorted(set(statuses.values()))}"
    assert again.terminate() == 0, again.stderr()


def test_the_embedded_database_is_private_to_its_user(launch, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = launch(data_dir)
    server.wait_ready()
    signup(server.url)
    for directory in (data_dir, data_dir / "mongo"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    files = [p for p in (data_dir / "mongo").iterdir()]
    assert any(p.suffix == ".db" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path.name} is {oct(path.stat().st_mode)}"
    # No TCP port: the database listens only on the 0600 socket in the 0700 directory.
    cmdline = " ".join(cmd for _, cmd in processes_mentioning(str(data_dir / "mongo")))
    assert "--socket" in cmdline and "--port" not in cmdline, cmdline
    assert server.terminate() == 0, server.stderr()
