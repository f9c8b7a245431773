"""Media: resumable uploads, the transcode pipeline on the job queue, playback sessions,
signed media files and the web player."""

from __future__ import annotations

import json
from pathlib import Path

from config import Settings
from handlers.media import playback, player, uploads
from handlers.routing import API, MEDIA, PAGES, VENDOR
from jobs.media import transcode
from server.app.domains.platform import job_queue
from server.app.wiring import Contribution, Wiring
from server.identity.tokens import derive_key
from server.media.access import MediaAccess
from server.media.pipeline import INDEX, TranscodePipeline
from server.media.playback import PlaybackService
from server.media.signing import MediaSigner
from server.media.uploads import UploadService
from storage.media.assets import MediaRepository
from storage.media.playback import PlaybackRepository
from storage.objects.gcs import GcsMediaStore
from storage.objects.store import LocalMediaStore, MediaStore


def media_store_for(settings: Settings, data_dir: Path) -> MediaStore:
    """Google Cloud Storage when GCS_BUCKET is set, else local disk under the data dir."""
    if settings.gcs_bucket:
        info = json.loads(Path(settings.gcs_credentials_file).read_text())
        return GcsMediaStore(settings.gcs_bucket, info, endpoint=settings.gcs_endpoint or None)
    return LocalMediaStore(data_dir / "media")


def wire(ctx: Wiring) -> Contribution:
    s, settings, platform = ctx.services, ctx.settings, ctx.platform
    data_dir = Path(settings.data_dir)
    media_repo = ctx.repo(MediaRepository)
    store = media_store_for(settings, data_dir)
    queue = job_queue(ctx)
    pipeline = TranscodePipeline(media_repo, store, data_dir / "uploads", data_dir / "staging",
                                 on_ready=s.content_admin.media_ready)
    transcode.register(queue, pipeline)
    upload_service = UploadService(media_repo, data_dir / "uploads", s.audit, queue,
                                   max_bytes=settings.max_upload_bytes, chunk_bytes=settings.upload_chunk_bytes,
                                   resolve_content=s.catalog.resolve_content)
    playback_repo = ctx.repo(PlaybackRepository)
    access = MediaAccess(playback_repo, s.sessions, s.entitlements, platform.pubsub)

    async def index_later(asset_id: str, version: int) -> None:
        await queue.submit(INDEX, {"asset_id": asset_id, "version": version})

    playback_service = PlaybackService(
        s.viewers, s.catalog, s.history, s.entitlements, media_repo, playback_repo,
        MediaSigner(derive_key(platform.secret_key, "media-urls")), platform.ephemeral, store, access,
        index_later=index_later,
    )
    return Contribution(
        services={"job_queue": queue, "media_pipeline": pipeline, "uploads": upload_service, "media_store": store,
                  "playback": playback_service},
        routes={
            API: [*uploads.routes(upload_service, queue), *playback.routes(playback_service)],
            PAGES: player.routes(),
            VENDOR: player.vendor_routes(),
            MEDIA: playback.media_routes(playback_service),
        },
        jobs=[queue],
        start=[access.start],
        stop=[access.stop],
    )
