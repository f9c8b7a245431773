"""Media helpers shared by the pipeline and browser tests: a generated clip, a published
movie, a chunked upload and waiting for a job, all through the real HTTP API."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
from pathlib import Path

import imageio_ffmpeg

from tests.helpers import raw_get


def make_clip(directory: Path, *, rate: str = "24", seconds: int = 6) -> Path:
    """`seconds` of ffmpeg's test pattern at `rate` frames per second and a tone, 640x480:
    a 480p/360p/240p ladder."""
    path = directory / f"clip-{rate.replace('/', '_')}-{seconds}s.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size=640x480:rate={rate}", "-f", "lavfi", "-i", "sine=frequency=440",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-shortest", str(path)],
        check=True, timeout=120,
    )
    return path


async def create_movie(served, manager) -> str:
    resp = await served.client.post("/api/v1/admin/titles", headers=manager["headers"],
                                    json={"type": "movie", "title": f"Clip {time.time_ns()}", "runtime_s": 6,
                                          "maturity_rating": "all"})
    assert resp.status_code == 201, resp.text
    title_id = resp.json()["id"]
    published = await served.client.post(f"/api/v1/admin/titles/{title_id}/publish", json={"without_media": True},
                                         headers=manager["headers"])
    assert published.status_code == 200, published.text
    return title_id


async def upload(served, manager, content_id: str, data: bytes, *, filename: str = "clip.mp4",
                 chunk: int = 256 * 1024) -> dict:
    created = await served.client.post("/api/v1/admin/uploads", headers=manager["headers"], json={
        "content_id": content_id, "filename": filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
    })
    assert created.status_code == 201, created.text
    upload_id = created.json()["id"]
    offset = 0
    while offset < len(data):
        part = data[offset:offset + chunk]
        resp = await served.client.put(f"/api/v1/admin/uploads/{upload_id}", content=part, headers={
            **manager["headers"], "Upload-Offset": str(offset), "Content-Type": "application/octet-stream"})
        assert resp.status_code == 200, resp.text
        offset = resp.json()["offset"]
    return created.json()


async def wait_job(served, manager, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    seen_progress = set()
    while time.monotonic() < deadline:
        job = (await served.client.get(f"/api/v1/admin/jobs/{job_id}", headers=manager["headers"])).json()
        seen_progress.add(job["progress"])
        if job["status"] in ("done", "failed"):
            job["seen_progress"] = seen_progress
            return job
        await asyncio.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish: {job}")




async def playable_title(served, clip: Path, plan_id: str = "premium") -> tuple[str, dict, dict]:
    """A published movie with a transcoded clip and an entitled viewer:
    (title id, viewer, the playback start reply)."""
    from tests.helpers import make_staff, signup

    manager = await make_staff(served, ["content_manager"])
    admin = await make_staff(served, ["admin"])
    viewer = await signup(served.client)
    title_id = await create_movie(served, manager)
    up = await upload(served, manager, title_id, clip.read_bytes())
    done = await served.client.post(f"/api/v1/admin/uploads/{up['id']}/complete", headers=manager["headers"])
    assert (await wait_job(served, manager, done.json()["job_id"]))["status"] == "done"
    granted = await served.client.post(f"/api/v1/admin/users/{viewer['user']['id']}/complimentary",
                                       json={"plan_id": plan_id, "days": 1}, headers=admin["headers"])
    assert granted.status_code == 200, granted.text
    play = await served.client.post(f"/api/v1/playback/{title_id}/start", json={}, headers=viewer["headers"])
    assert play.status_code == 200, play.text
    return title_id, viewer, play.json()


async def assert_every_spelling_meets_the_plan(served, base: str, *, allowed: str, above: str) -> None:
    """`base` is the signed asset-version path; `above` is a rendition beyond the plan.
    However its path is written, the above-plan rendition never answers 200."""
    status, _ = await raw_get(served, f"{base}/{allowed}/index.m3u8")
    assert status == 200
    status, body = await raw_get(served, f"{base}/{above}/index.m3u8")
    assert status == 403 and b"quality_not_in_plan" in body
    for name in ("index.m3u8", "seg_00000.ts"):
        spellings = [f"./{above}/{name}", f"%2E/{above}/{name}", f"%2e/{above}/{name}", f"/{above}/{name}",
                     f"{above}//{name}", f"{above}/./{name}", f"{above}/%2E/{name}", f".%2F{above}/{name}",
                     f"%2E%2F{above}%2F{name}", f"\\{above}\\{name}", f"%5C{above}%5C{name}",
                     f"{above}%5C{name}", f"./././{above}/{name}", f"{allowed}/../{above}/{name}",
                     f"{allowed}/%2E%2E/{above}/{name}", f"...{above}/{name}"]
        for spelling in spellings:
            status, body = await raw_get(served, f"{base}/{spelling}")
            assert status in (403, 404), (spelling, status)
            assert body.startswith(b"{"), spelling


async def capped_title(served, clip, height: int = 240):
    """A viewer on a Basic plan capped at `height`, watching a 480p/360p/240p title."""
    from tests.helpers import make_staff

    admin = await make_staff(served, ["admin"])
    capped = await served.client.patch("/api/v1/admin/plans/basic", json={"max_height": height},
                                       headers=admin["headers"])
    assert capped.status_code == 200, capped.text
    return await playable_title(served, clip, plan_id="basic")
