"""Content managers' media uploads (resumable, chunked) and background job progress."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from handlers.base import endpoint
from handlers.media.models import Job, Upload, UploadCreated
from handlers.routing import ApiHandler
from server.core import errors
from server.core.fields import Body, Id
from server.core.ids import ID_PATTERN
from server.media.uploads import UploadService
from server.platform.job_queue import JobQueue

TAGS = ("admin", "media")


class UploadCreate(Body):
    content_id: Id
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    size: int = Field(gt=0)
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]


class UploadsHandler(ApiHandler):
    def initialize(self, uploads: UploadService) -> None:
        self.uploads = uploads

    @endpoint("Start a resumable upload of a source video for a movie or an episode", body=UploadCreate,
              response=UploadCreated, status=201, permission="content.manage", tags=TAGS, errors=(404, 413))
    async def post(self) -> None:
        body = self.parse(UploadCreate)
        created = await self.uploads.create(self.user, body.content_id, body.filename, body.size, body.sha256,
                                            self.client_ip)
        self.reply({**created, "chunk_bytes": self.uploads.chunk_bytes}, 201)


class UploadHandler(ApiHandler):
    """PUT sends one chunk at `Upload-Offset` (binary body); GET tells where to resume."""

    def initialize(self, uploads: UploadService) -> None:
        self.uploads = uploads
        self.max_body_bytes = uploads.chunk_bytes

    @endpoint("Upload progress: the offset to resume from", response=Upload, permission="content.manage", tags=TAGS,
              errors=(404,))
    async def get(self, upload_id: str) -> None:
        self.reply(await self.uploads.progress(upload_id))

    @endpoint("Send one chunk at the current offset (header Upload-Offset, binary body)", response=Upload,
              permission="content.manage", tags=TAGS, errors=(404, 409, 413, 422),
              body_types=("application/offset+octet-stream", "application/octet-stream"), headers=("Upload-Offset",))
    async def put(self, upload_id: str) -> None:
        raw = self.request.headers.get("Upload-Offset", "")
        if not raw.isdigit():
            raise errors.ValidationFailed(details={"fields": {"Upload-Offset": "required, a byte offset"}})
        self.reply(await self.uploads.write_chunk(upload_id, int(raw), self.body_bytes))


class UploadCompleteHandler(ApiHandler):
    def initialize(self, uploads: UploadService) -> None:
        self.uploads = uploads

    @endpoint("Finish the upload: verify size, checksum and video, then start transcoding", response=Upload, status=202,
              permission="content.manage", tags=TAGS, errors=(404, 409, 422))
    async def post(self, upload_id: str) -> None:
        self.reply(await self.uploads.complete(self.user, upload_id, self.client_ip), 202)


class JobHandler(ApiHandler):
    def initialize(self, jobs: JobQueue) -> None:
        self.jobs = jobs

    @endpoint("A background job's state and progress", response=Job, permission="content.manage", tags=TAGS,
              errors=(404,))
    async def get(self, job_id: str) -> None:
        self.reply(await self.jobs.view(job_id))


def routes(uploads: UploadService, jobs: JobQueue) -> list:
    uid = rf"(?P<upload_id>{ID_PATTERN})"
    return [
        (r"/admin/uploads", UploadsHandler, {"uploads": uploads}),
        (rf"/admin/uploads/{uid}", UploadHandler, {"uploads": uploads}),
        (rf"/admin/uploads/{uid}/complete", UploadCompleteHandler, {"uploads": uploads}),
        (rf"/admin/jobs/(?P<job_id>{ID_PATTERN})", JobHandler, {"jobs": jobs}),
    ]
