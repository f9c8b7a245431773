"""Is this a video the pipeline can read? Answered by ffmpeg itself (from imageio-ffmpeg,
which ships ffmpeg but not ffprobe): its stream metadata, or a clear refusal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg


class NotAVideo(Exception):
    pass


@dataclass(frozen=True)
class Probe:
    width: int
    height: int
    fps: float
    duration: float
    video_codec: str
    has_audio: bool


def _probe(path: Path) -> Probe:
    try:
        frames = imageio_ffmpeg.read_frames(str(path))
        meta = next(frames)
        frames.close()
    except (OSError, StopIteration, RuntimeError) as exc:
        raise NotAVideo("ffmpeg cannot read a video stream in this file") from exc
    width, height = meta.get("source_size") or meta.get("size") or (0, 0)
    duration = float(meta.get("duration") or 0)
    if not width or not height or duration <= 0:
        raise NotAVideo("the file has no video stream with a known size and duration")
    return Probe(int(width), int(height), float(meta.get("fps") or 0), duration, str(meta.get("codec", "")),
                 bool(meta.get("audio_codec")))


async def probe(path: Path) -> Probe:
    return await asyncio.to_thread(_probe, path)
