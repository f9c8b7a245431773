"""I-frame playlists and measured frame rates, read from the MPEG-TS segments ffmpeg wrote.

A player scrubs and fast-forwards with an I-frame playlist (RFC 8216, EXT-X-I-FRAMES-ONLY):
one entry per keyframe, the byte range of a segment file that holds that frame. ffmpeg's
muxer writes each video frame as one PES packet and sets the random-access indicator in
the TS packet that starts a keyframe's PES. A range runs from that packet to the last TS
packet of the same PES (packets of the audio stream in between included, since a range
is contiguous). A segment opens with its tables (SDT, PAT, PMT); the client takes them
from the start of the file up to the file's first I-frame, so no range includes them
and no EXT-X-MAP is needed.

The same pass measures the rendition's frame rate for FRAME-RATE from the video
timestamps: imageio-ffmpeg ships no ffprobe, and the rate ffmpeg prints for a source is
rounded to two decimals (23.98 for 24000/1001, where the playlist wants 23.976).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

TS_PACKET = 188
SYNC = 0x47
CLOCK = 90_000  # MPEG-TS timestamps tick at 90 kHz
PLAYLIST = "iframes.m3u8"
_MEASURED_SPAN = CLOCK  # segments shorter than a second say too little about the frame rate
_SEGMENT_URI = re.compile(r"^seg_[0-9]{5,6}\.ts$")


class BadSegment(ValueError):
    """Not an MPEG-TS segment as the ladder writes them."""


@dataclass(frozen=True)
class IFrame:
    uri: str  # the segment file, relative to the rendition's playlists
    offset: int
    length: int
    pts: int


@dataclass(frozen=True)
class Scan:
    keyframes: list[tuple[int, int, int]]  # (offset, length, pts) of each keyframe's TS packets
    frames: list[int]  # the presentation time of every video frame


@dataclass(frozen=True)
class RenditionIndex:
    iframes: list[IFrame]
    frame_rate: float
    end_pts: int  # when the last frame stops showing

    def durations(self) -> list[float]:
        """Each I-frame lasts until the next one, the last until the end of the video."""
        ends = [f.pts for f in self.iframes[1:]] + [self.end_pts]
        return [(end - f.pts) / CLOCK for f, end in zip(self.iframes, ends, strict=True)]

    def bandwidth(self) -> tuple[int, int]:
        """(peak, average) bits per second a player fetching every I-frame needs."""
        durations = self.durations()
        peak = max(math.ceil(f.length * 8 / d) for f, d in zip(self.iframes, durations, strict=True) if d > 0)
        average = math.ceil(sum(f.length for f in self.iframes) * 8 / sum(durations))
        return peak, average

    def playlist(self) -> str:
        durations = self.durations()
        target = max(1, max(math.floor(d + 0.5) for d in durations))
        lines = ["#EXTM3U", "#EXT-X-VERSION:4", f"#EXT-X-TARGETDURATION:{target}", "#EXT-X-MEDIA-SEQUENCE:0",
                 "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-I-FRAMES-ONLY"]
        for frame, duration in zip(self.iframes, durations, strict=True):
            lines += [f"#EXTINF:{duration:.6f},", f"#EXT-X-BYTERANGE:{frame.length}@{frame.offset}", frame.uri]
        lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"


def _pid(data: bytes, pos: int) -> int:
    return ((data[pos + 1] & 0x1F) << 8) | data[pos + 2]


def _payload(data: bytes, pos: int) -> int:
    """Where the payload of the TS packet at `pos` starts (its end when it has none)."""
    control = (data[pos + 3] >> 4) & 3
    if not control & 1:
        return pos + TS_PACKET
    return pos + 5 + data[pos + 4] if control & 2 else pos + 4


def _video_pid(data: bytes) -> int:
    for pos in range(0, len(data), TS_PACKET):
        if data[pos + 1] & 0x40:
            start = _payload(data, pos)
            if data[start:start + 3] == b"\0\0\1" and 0xE0 <= data[start + 3] <= 0xEF:
                return _pid(data, pos)
    raise BadSegment("no video stream")


def _pts(data: bytes, start: int) -> int:
    if data[start:start + 3] != b"\0\0\1" or not data[start + 7] & 0x80:
        raise BadSegment("a video frame without a presentation time")
    b = data[start + 9:start + 14]
    return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def _aligned(data: bytes, head: bytes) -> list[int]:
    """Where a TS packet starts with `head` (sync byte, flags and PID)."""
    found, pos = [], data.find(head)
    while pos >= 0:
        if pos % TS_PACKET == 0:
            found.append(pos)
            pos = data.find(head, pos + TS_PACKET)
        else:
            pos = data.find(head, pos + 1)
    return found


def scan(data: bytes) -> Scan:
    """Every video frame's time and every keyframe's byte range in one segment. The frame
    starts are found by the TS header of their packets (bytes.find), so a long rendition
    costs a search, not a Python step per packet."""
    count = len(data) // TS_PACKET
    if not data or len(data) % TS_PACKET or data[::TS_PACKET].count(SYNC) != count:
        raise BadSegment("not whole, sync-aligned 188-byte TS packets")
    pid = _video_pid(data)
    heads = [bytes([SYNC, flags | pid >> 8, pid & 0xFF]) for flags in (0x40, 0x60)]  # frame start, any priority
    starts = sorted(pos for head in heads for pos in _aligned(data, head))
    frames: list[int] = []
    keyframes: list[tuple[int, int, int]] = []
    for i, pos in enumerate(starts):
        pts = _pts(data, _payload(data, pos))
        frames.append(pts)
        control = (data[pos + 3] >> 4) & 3
        if control & 2 and data[pos + 4] and data[pos + 5] & 0x40:  # random access indicator
            last = (starts[i + 1] if i + 1 < len(starts) else len(data)) - TS_PACKET
            while _pid(data, last) != pid:
                last -= TS_PACKET
            keyframes.append((pos, last + TS_PACKET - pos, pts))
    return Scan(keyframes, frames)


def segment_uris(playlist: str) -> list[str]:
    uris = [line.strip() for line in playlist.splitlines() if line.strip() and not line.startswith("#")]
    if not uris or not all(_SEGMENT_URI.match(uri) for uri in uris):
        raise BadSegment("not a rendition playlist of the ladder")
    return uris


async def index_rendition(playlist: str, read: Callable[[str], Awaitable[bytes]]) -> RenditionIndex:
    """`playlist` is a rendition's media playlist and `read` fetches one of its segments by
    URI; one segment is held in memory at a time."""
    iframes: list[IFrame] = []
    rates: list[float] = []
    first, last, frames = None, 0, 0
    for uri in segment_uris(playlist):
        found = await asyncio.to_thread(scan, await read(uri))
        iframes += [IFrame(uri, offset, length, pts) for offset, length, pts in found.keyframes]
        if not found.frames:
            continue
        low, high = min(found.frames), max(found.frames)
        if high - low >= _MEASURED_SPAN:
            rates.append((len(found.frames) - 1) * CLOCK / (high - low))
        first = low if first is None else min(first, low)
        last, frames = max(last, high), frames + len(found.frames)
    if not iframes or first is None:
        raise BadSegment("no keyframe in the rendition")
    if not rates and frames > 1 and last > first:
        rates.append((frames - 1) * CLOCK / (last - first))
    rate = round(max(rates), 3) if rates else 0.0
    return RenditionIndex(iframes, rate, last + (round(CLOCK / rate) if rate else 0))
