"""Resumable, chunked uploads of source video by content managers.

Create with the size and SHA-256; send chunks at the current offset; after a broken
connection ask for the offset and resume; complete, which checks size, checksum and that
ffmpeg can read a video, then queues transcoding. The file on disk is named by the
upload id only: a client-supplied file name never becomes a path.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from server.core import errors
from server.core.clock import now, to_ms
from server.core.ids import new_id, valid_id
from server.core.permissions import Principal
from server.media.pipeline import TRANSCODE
from server.media.probe import NotAVideo, probe
from server.platform.job_queue import JobQueue
from server.staff.audit import AuditLog
from storage.media.assets import MediaRepository

_SAFE_NAME = re.compile(r"[^A-Za-z0-9 ._()-]+")


def upload_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"], "content_id": doc["content_id"], "filename": doc["filename"], "size": doc["size"],
        "offset": doc["offset"], "status": doc["status"], "asset_id": doc.get("asset_id"),
        "job_id": doc.get("job_id"), "error": doc.get("error"),
    }


class UploadService:
    def __init__(self, repo: MediaRepository, root: Path, audit: AuditLog, jobs: JobQueue, *,
                 max_bytes: int, chunk_bytes: int, resolve_content: Callable[[str], Awaitable[Any]]) -> None:
        """`resolve_content` raises the catalog's 404 for an id that is no movie or episode,
        so media is never uploaded for nothing."""
        self._repo = repo
        self._resolve_content = resolve_content
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)
        self._audit = audit
        self._jobs = jobs
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes

    def path(self, upload_id: str) -> Path:
        return self._root / f"{valid_id(upload_id) or 'invalid'}.part"

    async def create(self, actor: Principal, content_id: str, filename: str, size: int, sha256: str,
                     ip: str) -> dict[str, Any]:
        if size > self.max_bytes:
            raise errors.PayloadTooLarge(f"Uploads are limited to {self.max_bytes} bytes.",
                                         details={"max_bytes": self.max_bytes})
        await self._resolve_content(content_id)
        doc = await self._repo.create_upload({
            "content_id": content_id, "filename": _SAFE_NAME.sub("_", filename)[:200], "size": size,
            "sha256": sha256.lower(), "offset": 0, "status": "uploading", "created_by": actor.user_id,
            "created_ms": to_ms(now()), "updated_ms": to_ms(now()),
        })
        await asyncio.to_thread(self.path(doc["_id"]).write_bytes, b"")
        await self._audit.record(actor, "upload.create", target_type="upload", target_id=doc["_id"], ip=ip,
                                 details={"content_id": content_id, "size": size})
        return upload_view(doc)

    async def progress(self, upload_id: str) -> dict[str, Any]:
        """Where a client resumes an upload from."""
        return upload_view(await self.get(upload_id))

    async def get(self, upload_id: str) -> dict[str, Any]:
        doc = await self._repo.upload(upload_id) if valid_id(upload_id) else None
        if doc is None:
            raise errors.NotFound("No such upload.", code="upload_not_found")
        return doc

    async def write_chunk(self, upload_id: str, offset: int, data: bytes) -> dict[str, Any]:
        doc = await self.get(upload_id)
        if doc["status"] != "uploading":
            raise errors.Conflict("This upload is complete.", code="upload_closed")
        if offset != doc["offset"]:
            raise errors.Conflict("Resume at the current offset.", code="offset_mismatch",
                                  details={"offset": doc["offset"]})
        if offset + len(data) > doc["size"]:
            raise errors.Unprocessable("The chunk goes past the declared size.", code="beyond_size",
                                       details={"offset": doc["offset"], "size": doc["size"]})
        if not data:
            return upload_view(doc)

        def write() -> None:
            fd = os.open(self.path(upload_id), os.O_WRONLY)
            try:
                os.pwrite(fd, data, offset)
                os.fsync(fd)
            finally:
                os.close(fd)

        await asyncio.to_thread(write)
        if not await self._repo.advance_upload(upload_id, offset, offset + len(data), to_ms(now())):
            fresh = await self.get(upload_id)
            raise errors.Conflict("Another chunk was written first.", code="offset_mismatch",
                                  details={"offset": fresh["offset"]})
        return upload_view({**doc, "offset": offset + len(data)})

    async def complete(self, actor: Principal, upload_id: str, ip: str) -> dict[str, Any]:
        doc = await self.get(upload_id)
        if doc["status"] != "uploading":
            return upload_view(doc)  # completing twice is harmless: the same job
        if doc["offset"] != doc["size"]:
            raise errors.Conflict("The upload is not finished.", code="upload_incomplete",
                                  details={"offset": doc["offset"], "size": doc["size"]})
        path = self.path(upload_id)
        digest = await asyncio.to_thread(_sha256, path)
        if digest != doc["sha256"]:
            await self._repo.set_upload(upload_id, {"status": "failed", "error": "checksum_mismatch"})
            raise errors.Unprocessable("The file does not match its checksum.", code="checksum_mismatch")
        try:
            info = await probe(path)
        except NotAVideo as exc:
            await self._repo.set_upload(upload_id, {"status": "failed", "error": "not_a_video"})
            raise errors.Unprocessable(f"This is not a video the pipeline can read: {exc}.",
                                       code="not_a_video") from None
        asset_id = new_id()
        await self._repo.put_asset({
            "_id": asset_id, "content_id": doc["content_id"], "status": "processing", "version": 0,
            "renditions": [], "duration": info.duration, "source": {"width": info.width, "height": info.height,
                                                                    "codec": info.video_codec},
            "upload_id": upload_id, "created_ms": to_ms(now()),
        })
        job = await self._jobs.submit(TRANSCODE, {"upload_id": upload_id, "asset_id": asset_id})
        if not await self._repo.set_upload(upload_id, {"status": "processing", "asset_id": asset_id,
                                                       "job_id": job["_id"]}, expect_status="uploading"):
            raise errors.Conflict("This upload was completed concurrently.", code="upload_closed")
        await self._audit.record(actor, "upload.complete", target_type="upload", target_id=upload_id, ip=ip,
                                 details={"asset_id": asset_id, "job_id": job["_id"]})
        return upload_view(await self.get(upload_id))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
