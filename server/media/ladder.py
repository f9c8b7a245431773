"""The HLS bitrate ladder, after Apple's HLS authoring specification (16:9 tiers):
renditions up to the source's height, each with its H.264 profile and CODECS string.

Segments last 6 s and every rendition has a keyframe every 2 s, at the same instants, so
a player switches renditions at any segment boundary and scrubs through an I-frame
playlist with a frame every 2 s (docs/hls.md says why 6 s rather than 4 s)."""

from __future__ import annotations

from dataclasses import dataclass

SEGMENT_SECONDS = 6
KEYFRAME_SECONDS = 2  # divides SEGMENT_SECONDS: every segment starts on a keyframe
AUDIO_KBPS = 128
AUDIO_CODEC = "mp4a.40.2"  # AAC-LC


@dataclass(frozen=True)
class Rung:
    name: str
    height: int
    video_kbps: int
    profile: str
    level: str
    codec: str  # RFC 6381 string for CODECS


LADDER = (
    Rung("1080p", 1080, 6000, "high", "4.0", "avc1.640028"),
    Rung("720p", 720, 3000, "high", "3.1", "avc1.64001f"),
    Rung("480p", 480, 1400, "main", "3.1", "avc1.4d401f"),
    Rung("360p", 360, 730, "main", "3.0", "avc1.4d401e"),
    Rung("240p", 240, 300, "baseline", "3.0", "avc1.42c01e"),
)


def ladder_for(source_height: int) -> list[Rung]:
    """Every rung at or below the source height (never upscale); at least the lowest one."""
    rungs = [r for r in LADDER if r.height <= source_height]
    return rungs or [LADDER[-1]]


def even_width(height: int, src_w: int, src_h: int) -> int:
    width = round(src_w * height / src_h)
    return width + (width % 2)
