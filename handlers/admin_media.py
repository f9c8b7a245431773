"""Content managers' media uploads (resumable, chunked) and background job progress."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from handlers.base import BaseHandler, endpoint
from handlers.models import Body
from server import errors
from server.media.uploads import UploadService, upload_view
from server.timeutil import iso
from storage.jobs import JobRepository

TAGS = ("admin", "media")
ContentId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{24}$")]


class UploadCreate(Body):
    content_id: ContentId
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    size: int = Field(gt=0)
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]


class UploadsHandler(BaseHandler):
    def initialize(self, uploads: UploadService) -> None:
        self.uploads = uploads

    @endpoint("Start a resumable upload of a source video for a movie or an episode", body=UploadCreate,
              status=201, permission="content.manage", tags=TAGS, errors=(413,))
    async def post(self) -> None:
        body = self.parse(UploadCreate)
        created = await self.uploads.create(self.user, body.content_id, body.filename, body.size, body.sha256,
                                            self.client_ip)
        self.reply({**created, "chunk_bytes": self.uploads.chunk_bytes}, 201)


class UploadHandler(BaseHandler):
    """PUT sends one chunk at `Upload-Offset` (binary body); GET tells where to resume."""

    def initialize(self, uploads: UploadService) -> None:
        self.uploads = uploads
        self.max_body_bytes = uploads.chunk_bytes

    @endpoint("Upload progress: the offset to resume from", permission="content.manage", tags=TAGS, errors=(404,))
    async def get(self, upload_id: str) -> None:
        self.reply(upload_view(await self.uploads.get(upload_id)))

    @endpoint("Send one chunk at the current offset (header Upload-Offset, binary body)",
              permission="content.manage", tags=TAGS, errors=(404, 409, 413, 422))
    async def put(self, upload_id: str) -> None:
        raw = self.request.headers.get("Upload-Offset", "")
        if not raw.isdigit():
            raise errors.ValidationFailed(details={"fields": {"Upload-Offset": "required, a byte offset"}})
        self.reply(await self.uploads.write_chunk(upload_id, int(raw), self.body_bytes))


class UploadCompleteHandler(BaseHandler):
    def initialize(self, uploads: UploadService) -> None:
        self.uploads = uploads

    @endpoint("Finish the upload: verify size, checksum and video, then start transcoding", status=202,
              permission="content.manage", tags=TAGS, errors=(404, 409, 422))
    async def post(self, upload_id: str) -> None:
        self.reply(await self.uploads.complete(self.user, upload_id, self.client_ip), 202)


class JobHandler(BaseHandler):
    def initialize(self, jobs: JobRepository) -> None:
        self.jobs = jobs

    @endpoint("A background job's state and progress", permission="content.manage", tags=TAGS, errors=(404,))
    async def get(self, job_id: str) -> None:
        job = await self.jobs.get(job_id)
        if job is None:
            raise errors.NotFound("No such job.", code="job_not_found")
        self.reply({
            "id": job["_id"], "kind": job["kind"], "status": job["status"], "progress": round(job["progress"], 3),
            "attempts": job["attempts"], "max_attempts": job["max_attempts"], "error": job.get("error"),
            "result": job.get("result"), "created_at": iso(job["created_ms"]), "updated_at": iso(job["updated_ms"]),
        })


def routes(uploads: UploadService, jobs: JobRepository) -> list:
    uid = r"(?P<upload_id>[0-9a-f]{24})"
    return [
        (r"/admin/uploads", UploadsHandler, {"uploads": uploads}),
        (rf"/admin/uploads/{uid}", UploadHandler, {"uploads": uploads}),
        (rf"/admin/uploads/{uid}/complete", UploadCompleteHandler, {"uploads": uploads}),
        (r"/admin/jobs/(?P<job_id>[0-9a-f]{24})", JobHandler, {"jobs": jobs}),
    ]
