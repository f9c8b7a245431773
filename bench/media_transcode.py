"""Transcode speed of the real HLS ladder, as a multiple of real time, on this machine.

    .venv/bin/python bench/media_transcode.py [--seconds 20] [--rounds 1] [--json]

1. Generates a 1080p30 source of `--seconds` s with ffmpeg's `testsrc2` pattern and a
   `sine` tone (ffmpeg from imageio_ffmpeg.get_ffmpeg_exe(); libx264 `--source-preset`
   at CRF 18, AAC 192k, in MP4), and probes it with server.media.probe.probe.
2. Runs server.media.transcode.transcode on it, the function the transcode job runs: one
   ffmpeg process decoding once and encoding the whole ladder for a 1080p source
   (1080p/720p/480p/360p/240p, libx264 `veryfast`, HLS with aligned keyframes), then the
   poster and the per-rendition measurement. Wall time, the realtime multiple
   (source seconds / wall seconds), CPU (ffmpeg's, as cores on average), and each rung's
   measured BANDWIDTH (peak segment) and AVERAGE-BANDWIDTH against its target.
3. Baseline in the same run: the same `transcode()` with the ladder cut to its first rung
   (server.media.transcode.ladder_for replaced for that call only), i.e. a single 1080p
   rendition with the same preset, rate control, keyframes, audio, HLS muxing and poster.
   Prints ladder / single realtime multiples as a ratio.

With `--rounds N` ladder and single alternate N times and each figure is the median.
testsrc2 is synthetic and easy to encode; real footage encodes slower at the same preset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import ROOT, children_cpu_seconds, load_average_line, scratch_dir

sys.path.insert(0, str(ROOT))

import imageio_ffmpeg

import server.media.transcode as transcode_module
from server.media.ladder import AUDIO_KBPS, LADDER, SEGMENT_SECONDS
from server.media.probe import probe


def make_source(path: Path, seconds: float, preset: str) -> dict[str, Any]:
    started = time.monotonic()
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
           "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", preset, "-crf", "18", "-g", "60",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k", "-ac", "2", "-shortest",
           "-movflags", "+faststart", str(path)]
    subprocess.run(cmd, check=True, timeout=max(600, seconds * 30))
    return {"seconds_to_make": time.monotonic() - started, "bytes": path.stat().st_size,
            "kbps": path.stat().st_size * 8 / seconds / 1000, "preset": preset}


async def one_transcode(source: Path, out: Path, info: Any, single: bool) -> dict[str, Any]:
    await asyncio.to_thread(shutil.rmtree, out, True)
    await asyncio.to_thread(out.mkdir, parents=True)
    original = transcode_module.ladder_for
    if single:
        transcode_module.ladder_for = lambda height: original(height)[:1]
    try:
        cpu0 = children_cpu_seconds()
        started = time.monotonic()
        renditions = await transcode_module.transcode(source, out, info)
        wall = time.monotonic() - started
        cpu = children_cpu_seconds() - cpu0
    finally:
        transcode_module.ladder_for = original
    targets = {r.name: (r.video_kbps + AUDIO_KBPS) * 1000 for r in LADDER}
    return {
        "wall_s": wall, "realtime": info.duration / wall, "ffmpeg_cpu_s": cpu, "cores": cpu / wall,
        "realtime_per_core": info.duration / cpu if cpu else float("nan"),
        "renditions": [{"name": r.name, "size": f"{r.width}x{r.height}", "segments": r.segments,
                        "peak_bps": r.bandwidth, "average_bps": r.average_bandwidth, "target_bps": targets[r.name],
                        "bytes": sum(f.stat().st_size for f in (out / r.name).glob("seg_*.ts"))}
                       for r in renditions],
    }


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    source = tmp / "source.mp4"
    made = await asyncio.to_thread(make_source, source, args.seconds, args.source_preset)
    info = await probe(source)
    runs: dict[str, list[dict[str, Any]]] = {"ladder": [], "single": []}
    for _ in range(args.rounds):  # alternate, so drift in the machine hits both alike
        runs["ladder"].append(await one_transcode(source, tmp / "ladder", info, single=False))
        runs["single"].append(await one_transcode(source, tmp / "single", info, single=True))
    mid = statistics.median
    summary = {name: {"wall_s": mid(r["wall_s"] for r in rs), "realtime": mid(r["realtime"] for r in rs),
                      "cores": mid(r["cores"] for r in rs), "ffmpeg_cpu_s": mid(r["ffmpeg_cpu_s"] for r in rs),
                      "realtime_per_core": mid(r["realtime_per_core"] for r in rs)}
               for name, rs in runs.items()}
    return {
        "source": {**made, "width": info.width, "height": info.height, "fps": info.fps, "duration": info.duration,
                   "codec": info.video_codec, "has_audio": info.has_audio},
        "segment_seconds": SEGMENT_SECONDS, "rounds": args.rounds, "cpus": os.cpu_count(),
        "summary": summary, "runs": runs,
        "ratio_ladder_over_single_realtime": summary["ladder"]["realtime"] / summary["single"]["realtime"],
        "ladder_cpu_over_single_cpu": summary["ladder"]["ffmpeg_cpu_s"] / summary["single"]["ffmpeg_cpu_s"],
    }


def report(out: dict[str, Any]) -> None:
    s = out["source"]
    print(f"source: {s['width']}x{s['height']} {s['fps']:g} fps, {s['duration']:.2f} s, {s['codec']}"
          f"{' + audio' if s['has_audio'] else ''}, {s['kbps']:.0f} kbit/s (made in {s['seconds_to_make']:.1f} s,"
          f" libx264 {s['preset']} CRF 18); {out['cpus']} CPUs; median of {out['rounds']} round(s)")
    print(load_average_line(out["loadavg_start"], out["loadavg_end"]))
    print(f"{'':30}{'wall s':>8}{'x realtime':>12}{'ffmpeg CPU s':>14}{'cores':>7}{'x realtime/core':>17}")
    for name, label in (("ladder", f"ladder ({len(out['runs']['ladder'][0]['renditions'])} renditions)"),
                        ("single", "single rendition (1080p)")):
        x = out["summary"][name]
        print(f"{label:30}{x['wall_s']:>8.1f}{x['realtime']:>12.2f}{x['ffmpeg_cpu_s']:>14.1f}{x['cores']:>7.2f}"
              f"{x['realtime_per_core']:>17.2f}")
    print(f"ratio ladder/single realtime multiple: {out['ratio_ladder_over_single_realtime']:.2f}"
          f" (ffmpeg CPU: ladder = {out['ladder_cpu_over_single_cpu']:.2f} x single)")
    print("(cores: ffmpeg CPU s / wall s; x realtime/core: source s / ffmpeg CPU s, less sensitive to other load)")
    print(f"\nper rung (last ladder round; {out['segment_seconds']} s segments; muxed audio included):")
    print(f"{'':8}{'size':>11}{'segments':>10}{'average kbit/s':>16}{'peak kbit/s':>13}{'target kbit/s':>15}"
          f"{'avg/target':>12}")
    for r in out["runs"]["ladder"][-1]["renditions"]:
        ratio = r["average_bps"] / r["target_bps"]
        print(f"{r['name']:8}{r['size']:>11}{r['segments']:>10}{r['average_bps'] / 1000:>16.0f}"
              f"{r['peak_bps'] / 1000:>13.0f}{r['target_bps'] / 1000:>15.0f}{ratio:>12.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="source duration (default 20)")
    p.add_argument("--rounds", type=int, default=1, help="alternated ladder/single runs, medians (default 1)")
    p.add_argument("--source-preset", default="ultrafast",
                   help="libx264 preset of the generated source (default ultrafast, to keep the set-up short)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    if not 1 <= args.seconds <= 600 or not 1 <= args.rounds <= 10:
        sys.exit("--seconds must be within 1..600 and --rounds within 1..10")
    load_start = os.getloadavg()
    with scratch_dir() as tmp:
        out = asyncio.run(run(args, tmp))
    out.update(loadavg_start=load_start, loadavg_end=os.getloadavg())
    if args.json:
        print(json.dumps(out))
    else:
        report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
