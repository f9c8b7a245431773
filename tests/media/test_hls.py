"""What players (and Apple's HLS authoring specification) expect of the playlists, checked
on a real transcode: FRAME-RATE on every variant, I-frame playlists whose byte ranges each
hold one whole keyframe (decoded by ffmpeg), listed and served within the plan like every
other rendition, a gzipped master, 6 s segments; and an asset transcoded before I-frame
playlists existed gets them when it is first played."""

from __future__ import annotations

import asyncio
import gzip
import re
import subprocess
import time
from urllib.parse import urljoin, urlsplit

import imageio_ffmpeg
import pytest

from tests.helpers import assert_error, raw_fetch
from tests.media.helpers import capped_title, make_clip, playable_title

pytestmark = pytest.mark.asyncio

CLIP_RATE = "24000/1001"  # NTSC film: ffmpeg prints it rounded to 23.98
FRAME_RATE = "23.976"  # what the playlist must say: the rate to three decimals
TS_PACKET = 188


@pytest.fixture(scope="module")
def ntsc_clip(tmp_path_factory: pytest.TempPathFactory):
    """Eight seconds at 24000/1001: one 6 s segment and a short one, keyframes every 2 s."""
    return make_clip(tmp_path_factory.mktemp("ntsc"), rate=CLIP_RATE, seconds=8)


def attributes(line: str) -> dict[str, str]:
    """The attribute list of a playlist tag, quotes removed."""
    pairs = re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])
    return {name: value.strip('"') for name, value in pairs}


def decoded(data: bytes) -> list[dict]:
    """The video frames ffmpeg decodes from MPEG-TS bytes, with their own timestamps."""
    proc = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-copyts", "-f", "mpegts", "-i", "pipe:0",
         "-map", "0:v", "-vf", "showinfo", "-f", "null", "-"],
        input=data, capture_output=True, timeout=60,
    )
    frames = []
    for line in proc.stderr.decode(errors="replace").splitlines():
        found = re.search(r" pts:\s*(\d+) .* iskey:(\d) type:(\w) checksum:([0-9A-F]+)", line)
        if found:
            frames.append({"pts": int(found[1]), "key": found[2] == "1", "type": found[3], "checksum": found[4]})
    return frames


def iframe_entries(playlist: str) -> list[tuple[float, int, int, str]]:
    """(EXTINF, length, offset, URI) of each entry of an I-frame playlist."""
    return [(float(d), int(n), int(o), uri) for d, n, o, uri in
            re.findall(r"#EXTINF:([0-9.]+),\n#EXT-X-BYTERANGE:(\d+)@(\d+)\n(\S+)", playlist)]


async def test_master_lists_frame_rates_and_iframe_playlists_within_the_plan(server, ntsc_clip) -> None:
    _, _, play = await capped_title(server, ntsc_clip, height=360)  # 480p is above the plan
    manifest = urlsplit(play["manifest_url"]).path
    base = manifest.rsplit("/", 1)[0]

    # gzip when asked (however short the master), never otherwise.
    status, headers, raw = await raw_fetch(server, manifest, {"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("content-encoding") == "gzip", headers
    assert "accept-encoding" in headers.get("vary", "").lower()
    master = gzip.decompress(raw).decode()
    status, headers, plain = await raw_fetch(server, manifest)
    assert status == 200 and "content-encoding" not in headers and plain.decode() == master

    lines = master.splitlines()
    variants = [attributes(line) for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert sorted(v["RESOLUTION"] for v in variants) == ["320x240", "480x360"]
    assert [v.get("FRAME-RATE") for v in variants] == [FRAME_RATE] * 2

    trick = [attributes(line) for line in lines if line.startswith("#EXT-X-I-FRAME-STREAM-INF:")]
    assert sorted(t["URI"] for t in trick) == ["240p/iframes.m3u8", "360p/iframes.m3u8"]
    for t in trick:
        assert int(t["BANDWIDTH"]) > 0 and int(t["AVERAGE-BANDWIDTH"]) <= int(t["BANDWIDTH"])
        assert t["CODECS"].startswith("avc1.") and "mp4a" not in t["CODECS"] and "FRAME-RATE" not in t
    assert_error(await server.client.get(f"{base}/480p/iframes.m3u8"), 403, "quality_not_in_plan")

    media = (await server.client.get(f"{base}/360p/index.m3u8")).text
    assert "#EXT-X-TARGETDURATION:6" in media.splitlines()
    assert abs(float(re.search(r"#EXTINF:([0-9.]+),", media)[1]) - 6.006) < 0.01  # 6 s, on a keyframe

    for t in trick:
        url = urljoin(manifest, t["URI"])  # relative: signed by the token in the path, like the rest
        playlist = await server.client.get(url)
        assert playlist.status_code == 200, playlist.text
        assert playlist.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        await assert_iframes_are_the_keyframes(server, url, playlist.text)


async def assert_iframes_are_the_keyframes(served, url: str, playlist: str) -> None:
    """Every keyframe of the rendition, in order, each range one whole keyframe: it starts
    at a TS sync byte with the keyframe's PES, and ffmpeg decodes from it (after the tables
    that open the file) exactly that frame, pixel for pixel as in the whole segment."""
    tags = playlist.splitlines()
    assert "#EXT-X-I-FRAMES-ONLY" in tags and "#EXT-X-ENDLIST" in tags
    assert int(re.search(r"#EXT-X-VERSION:(\d+)", playlist)[1]) >= 4
    entries = iframe_entries(playlist)
    segments: dict[str, bytes] = {}
    first_offset: dict[str, int] = {}
    for _, _, offset, uri in entries:
        if uri not in segments:
            whole = await served.client.get(urljoin(url, uri))
            assert whole.status_code == 200
            segments[uri], first_offset[uri] = whole.content, offset
    keyframes = [(uri, f) for uri, data in segments.items() for f in decoded(data) if f["key"]]
    assert len(keyframes) == len(entries) >= 4, (len(keyframes), len(entries))

    for (extinf, length, offset, uri), (key_uri, key), following in zip(
            entries, keyframes, [*keyframes[1:], None], strict=True):
        assert uri == key_uri
        ranged = await served.client.get(urljoin(url, uri), headers={"Range": f"bytes={offset}-{offset + length - 1}"})
        assert ranged.status_code == 206 and len(ranged.content) == length
        chunk = ranged.content
        assert length % TS_PACKET == 0 and chunk[::TS_PACKET] == b"\x47" * (length // TS_PACKET)
        payload = 5 + chunk[4] if chunk[3] & 0x20 else 4
        assert chunk[1] & 0x40 and chunk[payload:payload + 3] == b"\0\0\1" and chunk[payload + 3] >> 4 == 0xE
        frames = decoded(segments[uri][:first_offset[uri]] + chunk)
        assert len(frames) == 1, frames
        assert frames[0]["key"] and frames[0]["type"] == "I"
        assert (frames[0]["pts"], frames[0]["checksum"]) == (key["pts"], key["checksum"])
        if following is not None:
            assert abs(extinf - (following[1]["pts"] - key["pts"]) / 90_000) < 0.001


async def test_an_asset_transcoded_before_iframe_playlists_gets_them_when_first_played(server, clip) -> None:
    title_id, _, play = await playable_title(server, clip)
    db = server.platform.db
    asset = await db.media_assets.find_one({"content_id": title_id, "status": "ready"})
    folder = server.runtime.settings.data_dir / "media" / "assets" / asset["_id"] / f"v{asset['version']}"
    written = {r["name"]: (folder / r["name"] / "iframes.m3u8").read_text() for r in asset["renditions"]}
    measured = ("frame_rate", "iframe_bandwidth", "iframe_average_bandwidth")
    # As an asset transcoded before this existed: no measurements, no I-frame playlists.
    legacy = [{k: v for k, v in r.items() if k not in measured} for r in asset["renditions"]]
    await db.media_assets.update_one({"_id": asset["_id"]}, {"$set": {"renditions": legacy}})
    for name in written:
        (folder / name / "iframes.m3u8").unlink()

    manifest = urlsplit(play["manifest_url"]).path
    base = manifest.rsplit("/", 1)[0]
    first = (await server.client.get(manifest)).text
    assert first.count("#EXT-X-STREAM-INF:") == 3
    assert "FRAME-RATE" not in first and "I-FRAME" not in first  # as before, until it is indexed
    assert_error(await server.client.get(f"{base}/240p/iframes.m3u8"), 404, "media_not_found")

    deadline = time.monotonic() + 60
    master = first
    while master.count("#EXT-X-I-FRAME-STREAM-INF:") < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)  # the index job runs in this process's job loop
        master = (await server.client.get(manifest)).text
    assert master.count("#EXT-X-I-FRAME-STREAM-INF:") == 3, master
    assert master.count("FRAME-RATE=24.000") == 3
    for name, text in written.items():
        served = await server.client.get(f"{base}/{name}/iframes.m3u8")
        assert served.status_code == 200 and served.text == text  # as the transcode would have written it
    again = await db.media_assets.find_one({"_id": asset["_id"]})
    assert again["renditions"] == asset["renditions"]
