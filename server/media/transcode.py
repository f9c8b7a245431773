"""Source video → HLS ladder with one ffmpeg run: aligned keyframes every 2 s, 6 s
segments, AAC audio, a poster; then, per rendition, an I-frame playlist, and the master
playlist with BANDWIDTH, AVERAGE-BANDWIDTH, RESOLUTION, FRAME-RATE and CODECS measured
from the segments actually written.

ffmpeg is always called with an argument list, never a shell string.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import imageio_ffmpeg

from server.media import iframes
from server.media.ladder import (
    AUDIO_CODEC,
    AUDIO_KBPS,
    KEYFRAME_SECONDS,
    SEGMENT_SECONDS,
    Rung,
    even_width,
    ladder_for,
)
from server.media.probe import Probe

_EXTINF = re.compile(r"^#EXTINF:([0-9.]+),")
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
CONTENT_TYPES = {".m3u8": PLAYLIST_TYPE, ".ts": "video/mp2t", ".jpg": "image/jpeg"}  # what the ladder writes


class TranscodeFailed(Exception):
    pass


@dataclass(frozen=True)
class Rendition:
    name: str
    width: int
    height: int
    bandwidth: int
    average_bandwidth: int
    codecs: str
    segments: int
    # Measured from the segments; 0 for an asset transcoded before they were (see
    # TranscodePipeline.index): no FRAME-RATE and no I-frame playlist until then.
    frame_rate: float = 0.0
    iframe_bandwidth: int = 0
    iframe_average_bandwidth: int = 0

    @property
    def indexed(self) -> bool:
        return self.frame_rate > 0 and self.iframe_bandwidth > 0

    @property
    def video_codec(self) -> str:
        return self.codecs.split(",")[0]


def ffmpeg_args(source: Path, out: Path, probe: Probe, rungs: list[Rung]) -> list[str]:
    n = len(rungs)
    split = f"[0:v]split={n}" + "".join(f"[v{i}]" for i in range(n))
    scales = [f"[v{i}]scale={even_width(r.height, probe.width, probe.height)}:{r.height},setsar=1[v{i}o]"
              for i, r in enumerate(rungs)]
    args = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-i", str(source), "-filter_complex", ";".join([split, *scales])]
    for i in range(n):
        args += ["-map", f"[v{i}o]"]
        if probe.has_audio:
            args += ["-map", "0:a:0"]
    for i, r in enumerate(rungs):
        args += [f"-c:v:{i}", "libx264", f"-b:v:{i}", f"{r.video_kbps}k",
                 f"-maxrate:v:{i}", f"{int(r.video_kbps * 1.07)}k", f"-bufsize:v:{i}", f"{int(r.video_kbps * 1.5)}k",
                 f"-profile:v:{i}", r.profile, f"-level:v:{i}", r.level]
    args += ["-preset", "veryfast", "-pix_fmt", "yuv420p", "-sc_threshold", "0",
             "-force_key_frames", f"expr:gte(t,n_forced*{KEYFRAME_SECONDS})"]
    if probe.has_audio:
        args += ["-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k", "-ac", "2", "-ar", "48000"]
    stream_map = " ".join(
        f"v:{i}" + (f",a:{i}" if probe.has_audio else "") + f",name:{r.name}" for i, r in enumerate(rungs)
    )
    args += ["-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod",
             "-hls_flags", "independent_segments", "-hls_segment_type", "mpegts",
             "-hls_segment_filename", str(out / "%v" / "seg_%05d.ts"),
             "-var_stream_map", stream_map, "-progress", "pipe:1", "-nostats", str(out / "%v" / "index.m3u8")]
    return args


async def _run(args: list[str], on_progress: Callable[[float], Awaitable[None]] | None, duration: float) -> None:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
    )
    with contextlib.suppress(OSError):  # encoding must never starve the web server on the same host
        os.setpriority(os.PRIO_PROCESS, proc.pid, 10)
    assert proc.stdout is not None and proc.stderr is not None
    stderr_task = asyncio.ensure_future(proc.stderr.read())
    try:
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("out_time_us=") and on_progress is not None and duration > 0:
                with contextlib.suppress(ValueError):
                    await on_progress(min(0.99, int(line.split("=", 1)[1]) / 1e6 / duration))
        code = await proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        stderr_task.cancel()
        raise
    err = (await stderr_task).decode(errors="replace")
    if code != 0:
        raise TranscodeFailed(f"ffmpeg exited {code}: {err.strip()[-400:]}")


def measure(playlist: Path) -> tuple[int, int, int]:
    """(peak bits/s over any segment, average bits/s, segments) of a written variant."""
    durations = [float(m.group(1)) for m in map(_EXTINF.match, playlist.read_text().splitlines()) if m]
    files = sorted(playlist.parent.glob("seg_*.ts"))
    if not durations or len(files) != len(durations):
        raise TranscodeFailed(f"incomplete rendition {playlist.parent.name}")
    sizes = [f.stat().st_size for f in files]
    peak = max(int(s * 8 / d) for s, d in zip(sizes, durations, strict=True) if d > 0)
    average = int(sum(sizes) * 8 / sum(durations))
    return peak, average, len(files)


async def transcode(source: Path, out: Path, probe: Probe,
                    on_progress: Callable[[float], Awaitable[None]] | None = None) -> list[Rendition]:
    """Write `out/<rendition>/index.m3u8` + segments, `out/poster.jpg` and `out/master.m3u8`."""
    rungs = ladder_for(probe.height)
    for r in rungs:
        (out / r.name).mkdir(parents=True, exist_ok=True)
    await _run(ffmpeg_args(source, out, probe, rungs), on_progress, probe.duration)
    poster_at = f"{min(probe.duration * 0.1, 10.0):.2f}"
    await _run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
                "-ss", poster_at, "-i", str(source), "-frames:v", "1", "-vf", "scale=-2:720",
                "-q:v", "3", str(out / "poster.jpg")], None, 0)
    renditions = []
    for r in rungs:
        peak, average, count = measure(out / r.name / "index.m3u8")  # muxed: audio included
        rendition = Rendition(
            r.name, even_width(r.height, probe.width, probe.height), r.height, peak, average,
            f"{r.codec},{AUDIO_CODEC}" if probe.has_audio else r.codec, count,
        )
        renditions.append(await write_iframes(rendition, out / r.name))
    (out / "master.m3u8").write_text(master_playlist(renditions, lambda name: f"{name}/index.m3u8"))
    return renditions


async def index(rendition: Rendition, playlist: str,
                read: Callable[[str], Awaitable[bytes]]) -> tuple[Rendition, str]:
    """The rendition with its measured frame rate and I-frame bandwidths, and the text of
    its I-frame playlist, from its media playlist and segments."""
    try:
        found = await iframes.index_rendition(playlist, read)
    except iframes.BadSegment as exc:
        raise TranscodeFailed(f"rendition {rendition.name}: {exc}") from exc
    peak, average = found.bandwidth()
    return replace(rendition, frame_rate=found.frame_rate, iframe_bandwidth=peak,
                   iframe_average_bandwidth=average), found.playlist()


async def write_iframes(rendition: Rendition, folder: Path) -> Rendition:
    """Index a rendition written to `folder` and write its I-frame playlist beside it."""
    indexed, text = await index(rendition, (folder / "index.m3u8").read_text(),
                                lambda uri: asyncio.to_thread((folder / uri).read_bytes))
    (folder / iframes.PLAYLIST).write_text(text)
    return indexed


def master_playlist(renditions: list[Rendition], uri: Callable[[str], str],
                    iframe_uri: Callable[[str], str] = lambda name: f"{name}/{iframes.PLAYLIST}") -> str:
    """One variant per rendition, and one I-frame variant per rendition that has an I-frame
    playlist (FRAME-RATE is not defined for those)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    ordered = sorted(renditions, key=lambda r: r.bandwidth)
    for r in ordered:
        rate = f"FRAME-RATE={r.frame_rate:.3f}," if r.frame_rate > 0 else ""
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={r.bandwidth},AVERAGE-BANDWIDTH={r.average_bandwidth},"
            f'RESOLUTION={r.width}x{r.height},{rate}CODECS="{r.codecs}"'
        )
        lines.append(uri(r.name))
    for r in ordered:
        if r.indexed:
            lines.append(
                f"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={r.iframe_bandwidth},"
                f"AVERAGE-BANDWIDTH={r.iframe_average_bandwidth},RESOLUTION={r.width}x{r.height},"
                f'CODECS="{r.video_codec}",URI="{iframe_uri(r.name)}"'
            )
    return "\n".join(lines) + "\n"


def rendition_doc(r: Rendition) -> dict[str, object]:
    return asdict(r)
