"""The media job kinds: the job queue runs the media pipeline for each completed upload,
under a renewed lease, retried with backoff, given up after the last attempt; and indexes
(I-frame playlists, frame rates) an asset transcoded before those existed."""

from __future__ import annotations

from server.media.pipeline import INDEX, TRANSCODE, TranscodePipeline
from server.platform.job_queue import JobQueue


def register(queue: JobQueue, pipeline: TranscodePipeline) -> None:
    queue.register(TRANSCODE, pipeline.run, pipeline.gave_up)
    queue.register(INDEX, pipeline.index)
