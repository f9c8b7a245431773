"""The transcode job kind: the job queue runs the media pipeline for each completed upload,
under a renewed lease, retried with backoff, given up after the last attempt."""

from __future__ import annotations

from server.media.pipeline import TRANSCODE, TranscodePipeline
from server.platform.job_queue import JobQueue


def register(queue: JobQueue, pipeline: TranscodePipeline) -> None:
    queue.register(TRANSCODE, pipeline.run, pipeline.gave_up)
