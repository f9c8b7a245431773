"""The admin commands of `run.py` as a newcomer types them: `set-password` (the way back
in after `run.py demo` printed a password once), global options after the command, and
an empty `REDIS_URL=` meaning "not set"."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PASSWORD, assert_error, login, signup
from tests.platform.test_process import RUN_PY, clean_env

NEW_PASSWORD = "a fresh lantern over quiet harbours"


def _run(tmp_path: Path, served, mongo_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    settings = served.runtime.settings
    return subprocess.run(
        [sys.executable, str(RUN_PY), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=clean_env(MONGO_URL=mongo_url, NAMELESS_MONGO_DB=settings.mongo_db,
                      NAMELESS_SECRET_KEY=settings.secret_key.get_secret_value(), NAMELESS_LOG_LEVEL="WARNING",
                      **env),
    )


@pytest.mark.asyncio
async def test_set_password_resets_it_and_ends_the_sessions(server, mongo_url, tmp_path) -> None:
    user = await signup(server.client)
    done = await asyncio.to_thread(
        _run, tmp_path, server, mongo_url, "set-password", "--email", user["email"].upper(),
        "--data-dir", str(tmp_path / "d"), NAMELESS_NEW_PASSWORD=NEW_PASSWORD, REDIS_URL="",
    )
    assert done.returncode == 0, done.stderr
    assert "password set" in done.stdout
    assert_error(await login(server.client, user["email"], PASSWORD), 401, "invalid_credentials")
    assert (await login(server.client, user["email"], NEW_PASSWORD)).status_code == 200
    refreshed = await server.client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert refreshed.status_code == 401, refreshed.text

    unknown = await asyncio.to_thread(_run, tmp_path, server, mongo_url, "--data-dir", str(tmp_path / "d"),
                                      "set-password", "--email", "nobody@example.com",
                                      NAMELESS_NEW_PASSWORD=NEW_PASSWORD)
    assert unknown.returncode == 1 and "No account" in unknown.stderr


def test_global_options_go_before_or_after_the_command() -> None:
    from run import _parser

    parser = _parser()
    assert parser.parse_args(["--data-dir", "a", "demo"]).data_dir == Path("a")
    assert parser.parse_args(["demo", "--data-dir", "b", "--clips", "1"]).data_dir == Path("b")
    assert parser.parse_args(["--port", "9", "set-password", "--email", "x@example.com"]).port == 9
    assert parser.parse_args([]).data_dir is None


def test_make_demo_loads_the_demo() -> None:
    dry = subprocess.run(["make", "-n", "demo"], cwd=RUN_PY.parent, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and "run.py demo" in dry.stdout, dry.stdout + dry.stderr
