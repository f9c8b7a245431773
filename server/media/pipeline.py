"""The media pipeline, run as the `transcode` job: source upload → HLS ladder in a staging folder → every file into the
media store under a new immutable version prefix → one write that makes it playable.

A job killed half-way leaves only an unreferenced, partial version behind (in the store
and in staging, since a killed process runs no `finally`); the retry (a new attempt, so a
new version) removes both and starts clean.

An asset transcoded before I-frame playlists and measured frame rates existed is indexed
by the `hls_index` job, which playback asks for the first time it serves such an asset's
master: the job reads the stored segments, adds each rendition's `iframes.m3u8` to the
same version and records the measurements. Until it has run, that master lists the
renditions without FRAME-RATE and without I-frame variants, as before.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from server.core.clock import now, to_ms
from server.media import iframes
from server.media.probe import probe
from server.media.transcode import CONTENT_TYPES, PLAYLIST_TYPE, Rendition, index, rendition_doc, transcode
from server.platform.job_queue import Progress
from storage.media.assets import MediaRepository
from storage.objects.store import MediaStore

TRANSCODE = "transcode"  # the job kinds
INDEX = "hls_index"

# (content id, asset id, duration in seconds): told once an asset is playable for a content
MediaReady = Callable[[str, str, float], Awaitable[None]]


async def _nobody(content_id: str, asset_id: str, duration: float) -> None:
    return None


class TranscodePipeline:
    def __init__(self, repo: MediaRepository, store: MediaStore, uploads_dir: Path, staging_dir: Path,
                 on_ready: MediaReady = _nobody) -> None:
        self._repo = repo
        self._store = store
        self._uploads = Path(uploads_dir)
        self._staging = Path(staging_dir)
        self._on_ready = on_ready

    async def run(self, job: dict[str, Any], progress: Progress) -> dict[str, Any]:
        upload_id, asset_id = job["payload"]["upload_id"], job["payload"]["asset_id"]
        version = int(job["attempts"])
        source = self._uploads / f"{upload_id}.part"
        staging = self._staging / f"{asset_id}-v{version}"
        for earlier in range(1, version):  # a killed attempt's partial files, stored and staged
            await self._store.delete_prefix(f"assets/{asset_id}/v{earlier}/")
            await asyncio.to_thread(shutil.rmtree, self._staging / f"{asset_id}-v{earlier}", True)
        await asyncio.to_thread(shutil.rmtree, staging, True)
        staging.mkdir(parents=True)
        try:
            info = await probe(source)
            renditions = await transcode(source, staging, info, lambda p: progress(p * 0.9))
            prefix = f"assets/{asset_id}/v{version}/"
            files = sorted(p for p in staging.rglob("*") if p.is_file())
            for i, path in enumerate(files):
                rel = path.relative_to(staging).as_posix()
                ctype = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
                await self._store.put_file(path, prefix + rel, ctype)
                if i % 20 == 0:
                    await progress(0.9 + 0.09 * i / len(files))
            await self._repo.publish_version(asset_id, version, [rendition_doc(r) for r in renditions],
                                             info.duration, to_ms(now()))
            await self._repo.set_upload(upload_id, {"status": "ready"})
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        asset = await self._repo.asset(asset_id)
        owners = asset["content_id"] if asset is not None else []
        for content_id in owners if isinstance(owners, list) else [owners]:
            await self._on_ready(str(content_id), asset_id, float(info.duration))
        return {"asset_id": asset_id, "version": version, "renditions": [r.name for r in renditions]}

    async def index(self, job: dict[str, Any], progress: Progress) -> dict[str, Any]:
        """I-frame playlists and frame rates for an asset version transcoded without them,
        from its stored segments (one segment in memory at a time). Idempotent: a version
        already indexed, replaced or gone is left alone."""
        asset_id, version = job["payload"]["asset_id"], int(job["payload"]["version"])
        asset = await self._repo.asset(asset_id)
        if asset is None or asset["status"] != "ready" or int(asset["version"]) != version:
            return {"asset_id": asset_id, "indexed": []}
        prefix = f"assets/{asset_id}/v{version}/"
        renditions = [Rendition(**r) for r in asset["renditions"]]
        done: list[Rendition] = []
        for i, rendition in enumerate(renditions):
            if not rendition.indexed:
                folder = f"{prefix}{rendition.name}/"
                playlist = (await self._store.read(folder + "index.m3u8")).decode()
                rendition, text = await index(rendition, playlist, lambda uri, f=folder: self._store.read(f + uri))
                self._staging.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=self._staging) as tmp:
                    local = Path(tmp) / iframes.PLAYLIST
                    local.write_text(text)
                    await self._store.put_file(local, folder + iframes.PLAYLIST, PLAYLIST_TYPE)
            done.append(rendition)
            await progress((i + 1) / len(renditions))
        await self._repo.set_renditions(asset_id, version, [rendition_doc(r) for r in done])
        return {"asset_id": asset_id, "indexed": [r.name for r, was in zip(done, renditions, strict=True)
                                                  if not was.indexed]}

    async def share(self, asset_id: str, content_id: str) -> None:
        """Make a ready asset playable for one more title or episode too (the demo plays one
        short clip under many titles) without transcoding it again."""
        asset = await self._repo.asset(asset_id)
        if asset is None or asset["status"] != "ready":
            raise ValueError(f"asset {asset_id} is not ready")
        await self._repo.add_content(asset_id, content_id)
        await self._on_ready(content_id, asset_id, float(asset["duration"]))

    async def gave_up(self, job: dict[str, Any]) -> None:
        payload = job["payload"]
        await self._repo.set_upload(payload["upload_id"], {"status": "failed", "error": "transcode_failed"})
        asset = await self._repo.asset(payload["asset_id"])
        if asset is not None and asset["status"] != "ready":
            await self._repo.put_asset({**asset, "status": "failed"})
