"""A transcode killed for real: the `run.py` process and its ffmpeg get SIGKILL half-way
through a transcode (no `finally`, no clean-up, no goodbye), then a new server starts on
the same data dir and database. The dead worker's lease lapses, the job runs again as
attempt 2, the first attempt's leftovers are removed and only the new version is
published."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from pymongo import MongoClient

from tests.helpers import PASSWORD, bearer, eventually
from tests.media.helpers import create_movie, make_clip, upload, wait_job
from tests.platform import test_process
from tests.platform.test_process import processes_mentioning, run_py

pytestmark = pytest.mark.asyncio

launch = test_process.launch  # the fixture that starts and cleans up run.py processes




def ffmpeg_writing_into(staging: Path) -> list[int]:
    """The ffmpeg processes whose output is under `staging`, once a segment file exists."""
    pids = [pid for pid, cmd in processes_mentioning(str(staging)) if "ffmpeg" in cmd]
    return pids if pids and any(staging.rglob("seg_*.ts")) else []


async def test_a_transcode_killed_mid_ffmpeg_is_retried_and_leaves_nothing_behind(
        launch, mongo_url: str, tmp_path: Path) -> None:
    # 30 s of video, so ffmpeg is still writing when the test looks (the 6 s clip of the other
    # tests can be transcoded whole, 1.3 s once, between two looks on a quiet machine)
    clip = await asyncio.to_thread(make_clip, tmp_path, seconds=30)
    data_dir = tmp_path / "data"
    db_name = f"test_{uuid.uuid4().hex[:12]}"
    env = {"MONGO_URL": mongo_url, "NAMELESS_MONGO_DB": db_name, "NAMELESS_SECRET_KEY": "kill-test-" + "k" * 32,
           "NAMELESS_JOB_LEASE": "6", "NAMELESS_LOG_LEVEL": "WARNING"}
    first = launch(data_dir, **env)
    email = f"root-{uuid.uuid4().hex[:8]}@example.com"
    created = await asyncio.to_thread(run_py, "createsuperuser", "--email", email, "--data-dir", str(data_dir),
                                      cwd=tmp_path, NAMELESS_SUPERUSER_PASSWORD=PASSWORD, **env)
    assert created.returncode == 0, created.stderr
    await asyncio.to_thread(first.wait_ready)
    mongo: MongoClient = MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    db = mongo[db_name]
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
            login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            assert login.status_code == 200, login.text
            admin = {"headers": bearer(login.json()["access_token"])}
            served = SimpleNamespace(client=client)
            title_id = await create_movie(served, admin)
            up = await upload(served, admin, title_id, clip.read_bytes())
            done = await client.post(f"/api/v1/admin/uploads/{up['id']}/complete", headers=admin["headers"])
            assert done.status_code == 202, done.text
        job_id, asset_id = done.json()["job_id"], done.json()["asset_id"]

        staging = data_dir / "staging" / f"{asset_id}-v1"
        try:
            ffmpeg = await eventually(lambda: ffmpeg_writing_into(staging), "ffmpeg writing segments", timeout=60)
        except AssertionError as exc:
            staged = sorted(p.name for p in (data_dir / "staging").glob("*")) if (data_dir / "staging").exists() else []
            raise AssertionError(f"{exc}; job: {db.jobs.find_one({'_id': job_id})}; staging: {staged}; "
                                 f"server log: {first.stderr()[-2000:]}") from None
        group = first.proc.pid
        os.killpg(group, signal.SIGSTOP)  # freeze the server and ffmpeg where they are
        assert all(os.getpgid(pid) == group for pid in ffmpeg)
        os.killpg(group, signal.SIGKILL)
        first.proc.wait(timeout=10)
        await eventually(lambda: not processes_mentioning(str(staging)), "ffmpeg gone", timeout=10)

        # What the crash left: a running job nobody renews, partial output, nothing published.
        job = db.jobs.find_one({"_id": job_id})
        assert job["status"] == "running" and job["attempts"] == 1, job
        asset = db.media_assets.find_one({"_id": asset_id})
        assert asset["status"] == "processing" and asset["renditions"] == [], asset
        assert any(staging.rglob("seg_*.ts")), "the killed ffmpeg left no partial output to clean"

        second = launch(data_dir, **env)
        await asyncio.to_thread(second.wait_ready)
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as client:
            finished = await wait_job(SimpleNamespace(client=client), admin, job_id, timeout=90)
        assert finished["status"] == "done" and finished["attempts"] == 2, finished
        assert finished["result"]["version"] == 2
        asset = db.media_assets.find_one({"_id": asset_id})
        assert asset["status"] == "ready" and asset["version"] == 2
        assert [p.name for p in (data_dir / "media" / "assets" / asset_id).iterdir()] == ["v2"]
        assert sorted(p.name for p in (data_dir / "staging").iterdir()) == [], "staging left behind"
        assert second.terminate() == 0, second.stderr()
    finally:
        mongo.drop_database(db_name)
        mongo.close()
