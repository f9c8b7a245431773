"""What the playback and upload endpoints reply."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from handlers.models import Reply


class PlaybackStarted(Reply):
    session_id: str = Field(description="heartbeat and stop this playback session with it")
    manifest_url: str = Field(description="the signed HLS master playlist, absolute; every URL inside it is signed")
    expires_at: dt.datetime = Field(description="when the signed links stop working")
    resume_position: float = Field(description="seconds to start from (0 once completed)")
    max_height: int = Field(description="the highest rendition the plan allows")


class HeartbeatAck(Reply):
    ok: Literal[True]
    completed: bool = Field(description="the movie or episode counts as watched (90 percent)")


class Upload(Reply):
    id: str
    content_id: str
    filename: str
    size: int
    offset: int = Field(description="bytes received: send the next chunk at this Upload-Offset")
    status: Literal["uploading", "processing", "ready", "failed"]
    asset_id: str | None
    job_id: str | None = Field(description="the transcoding job, once completed: GET /admin/jobs/{job_id}")
    error: str | None


class UploadCreated(Upload):
    chunk_bytes: int = Field(description="the largest chunk one PUT may carry")


class Job(Reply):
    id: str
    kind: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float = Field(ge=0, le=1)
    attempts: int
    max_attempts: int
    error: str | None
    result: dict[str, Any] | None
    created_at: dt.datetime
    updated_at: dt.datetime
