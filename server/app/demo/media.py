"""Playable clips for the demo catalog: a few seconds of ffmpeg's test sources per movie,
uploaded and transcoded through the real pipeline, plus a demo viewer with a plan, so a
newcomer can sign in and press play."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imageio_ffmpeg

from server.core import errors
from server.core.permissions import Principal, Role

if TYPE_CHECKING:
    from server.app.wiring import Services

PATTERNS = ("testsrc2", "smptehdbars", "mandelbrot", "rgbtestsrc")
DEMO_VIEWER = "demo-viewer@example.com"
SYSTEM = Principal("system", "demo", frozenset({Role.SUPER_ADMIN.value}))


async def make_clip(path: Path, pattern: str, seconds: int = 8, tone: int = 440) -> None:
    proc = await asyncio.create_subprocess_exec(
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"{pattern}=size=1280x720:rate=30", "-f", "lavfi", "-i", f"sine=frequency={tone}",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-shortest", str(path), stdin=asyncio.subprocess.DEVNULL,
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"ffmpeg could not make the {pattern} clip")


async def load_demo_media(services: Services, *, clips: int = 3) -> dict[str, Any]:
    """Attach a transcoded clip to the first movies that have none; idempotent."""
    movies = [t for t in (await services.content_admin.list_titles(
        status="published", kind="movie", q=None, limit=50, cursor=None)).items]
    attached = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, movie in enumerate(movies[:clips]):
            if await services.playback.playable(movie["id"]):
                continue
            clip = Path(tmp) / f"clip{i}.mp4"
            await make_clip(clip, PATTERNS[i % len(PATTERNS)], tone=330 + 110 * i)
            data = await asyncio.to_thread(clip.read_bytes)
            upload = await services.uploads.create(SYSTEM, movie["id"], clip.name, len(data),
                                                   hashlib.sha256(data).hexdigest(), "demo")
            await services.uploads.write_chunk(upload["id"], 0, data)
            await services.uploads.complete(SYSTEM, upload["id"], "demo")
            attached += 1
    while await services.job_queue.run_one():  # transcode here, even when no worker runs
        pass
    password = None
    try:
        password = secrets.token_urlsafe(12)
        viewer = await services.accounts.create_user(DEMO_VIEWER, "Demo Viewer", password=password,
                                                     email_verified=True)
        await services.entitlements.grant_complimentary(SYSTEM, viewer["_id"], "premium", 365, "demo")
    except errors.Conflict:
        password = None  # made on an earlier run; its password was printed then
    return {"clips": attached, "viewer": DEMO_VIEWER, "password": password}
