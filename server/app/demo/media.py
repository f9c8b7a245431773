"""Playable clips for the demo catalog: a few seconds of ffmpeg's test sources, uploaded and
transcoded through the real pipeline and shared by every demo movie and episode, plus a
demo viewer with a plan and a little history, so a newcomer can sign in, see suggestions
made for them and press play."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imageio_ffmpeg

from server.catalog import rollups
from server.catalog.viewers import Viewer
from server.core import errors
from server.core.permissions import Principal, Role

if TYPE_CHECKING:
    from server.app.wiring import Services

PATTERNS = ("testsrc2", "smptehdbars", "mandelbrot", "rgbtestsrc")
CLIP_SECONDS = 8
DEMO_VIEWER = "demo-viewer@example.com"
# What the demo viewer has watched (title, share of it): two tastes, so that suggestions
# visibly follow from it ("Because you watched Cold Ledger").
DEMO_HISTORY = (("Cold Ledger", 1.0), ("Glasshouse", 0.5), ("The Audit", 1.0))
SYSTEM = Principal("system", "demo", frozenset({Role.SUPER_ADMIN.value}))
TRANSCODE_TIMEOUT_S = 600


async def make_clip(path: Path, pattern: str, seconds: int = CLIP_SECONDS, tone: int = 440,
                    size: str = "1280x720") -> None:
    proc = await asyncio.create_subprocess_exec(
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"{pattern}=size={size}:rate=30", "-f", "lavfi", "-i", f"sine=frequency={tone}",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-shortest", str(path), stdin=asyncio.subprocess.DEVNULL,
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"ffmpeg could not make the {pattern} clip")


async def _transcoded(services: Services, content_id: str, n: int, tmp: Path, size: str) -> str:
    """Upload a generated clip for `content_id` and wait until the pipeline made it ready
    (here when no worker runs in this process, or by a worker that does); its asset id."""
    clip = tmp / f"clip{n}.mp4"
    await make_clip(clip, PATTERNS[n % len(PATTERNS)], tone=330 + 110 * n, size=size)
    data = await asyncio.to_thread(clip.read_bytes)
    upload = await services.uploads.create(SYSTEM, content_id, clip.name, len(data),
                                           hashlib.sha256(data).hexdigest(), "demo")
    await services.uploads.write_chunk(upload["id"], 0, data)
    await services.uploads.complete(SYSTEM, upload["id"], "demo")
    deadline = time.monotonic() + TRANSCODE_TIMEOUT_S
    while (doc := await services.uploads.get(upload["id"]))["status"] not in ("ready", "failed"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo clip for {content_id} did not transcode in time")
        if not await services.job_queue.run_one():
            await asyncio.sleep(0.2)  # a worker of this process has it
    if doc["status"] != "ready":
        raise RuntimeError(f"the demo clip for {content_id} failed: {doc.get('error')}")
    return str(doc["asset_id"])


async def attach_clips(services: Services, content_ids: list[str], *, clips: int = 3,
                       size: str = "1280x720") -> tuple[int, int]:
    """Make every movie or episode in `content_ids` playable: the first `clips` get a clip
    of their own, the others share those assets (their runtime becomes the clip's);
    returns (clips transcoded, contents made playable)."""
    assets: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, content_id in enumerate(content_ids):
            if len(assets) < max(1, clips):
                assets.append(await _transcoded(services, content_id, n, Path(tmp), size))
            else:
                await services.media_pipeline.share(assets[n % len(assets)], content_id)
    return len(assets), len(content_ids)


async def load_demo_media(services: Services) -> dict[str, Any]:
    """The demo viewer (premium for a year) with a short history, and fresh suggestions for
    it; idempotent. The password is returned once, when the account is made."""
    try:
        password = secrets.token_urlsafe(12)
        user = await services.accounts.create_user(DEMO_VIEWER, "Demo Viewer", password=password,
                                                   email_verified=True)
    except errors.Conflict:
        return {"viewer": DEMO_VIEWER, "password": None}  # made on an earlier run; its password was printed then
    await services.entitlements.grant_complimentary(SYSTEM, user["_id"], "premium", 365, "demo")
    profile = (await services.profiles.list(str(user["_id"])))[0]
    viewer = Viewer(user_id=str(user["_id"]), profile_id=profile["id"], name=profile["name"])
    titles = {t["title"]: t for t in (await services.content_admin.list_titles(
        status="published", kind=None, q=None, limit=100, cursor=None)).items}
    for name, share in DEMO_HISTORY:
        title = titles.get(name)
        if title is None:
            continue
        content_id, runtime = title["id"], title.get("runtime_s")
        if title["type"] == "series":
            first = (await services.content_admin.list_episodes(title["id"], 1, 1, None)).items
            if not first:
                continue
            content_id, runtime = first[0]["id"], first[0].get("runtime_s")
        duration = float(runtime or CLIP_SECONDS)
        await services.history.record_progress(viewer, content_id, duration * share, duration)
    await rollups.recommend(services.rollup_sources)
    return {"viewer": DEMO_VIEWER, "password": password}
