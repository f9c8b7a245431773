"""The Google Cloud Storage media store with the real client library against a local
stand-in of GCS's HTTP API, and V4 signed URLs checked with Google's algorithm."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest

from storage.objects.gcs import GcsMediaStore
from tests.fakes.gcs import BUCKET, start_fake_gcs

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def gcs():
    fake, server = await start_fake_gcs()
    yield fake
    server.stop()


async def test_put_read_exists_delete(gcs, tmp_path: Path) -> None:
    store = GcsMediaStore(BUCKET, gcs.credentials_info(), endpoint=gcs.url)
    src = tmp_path / "seg.ts"
    src.write_bytes(b"G" * 1000)
    await store.put_file(src, "assets/a1/v1/360p/seg_00000.ts", "video/mp2t")
    await store.put_file(src, "assets/a1/v1/360p/seg_00001.ts", "video/mp2t")
    assert gcs.objects["assets/a1/v1/360p/seg_00000.ts"] == (b"G" * 1000, "video/mp2t")
    assert await store.read("assets/a1/v1/360p/seg_00000.ts") == b"G" * 1000
    assert await store.exists("assets/a1/v1/360p/seg_00001.ts")
    assert not await store.exists("assets/a1/v1/360p/seg_00009.ts")
    await store.delete_prefix("assets/a1/v1/")
    assert gcs.objects == {}
    assert store.local_path("assets/a1/v1/x") is None


async def test_v4_signed_urls_are_verified(gcs, tmp_path: Path) -> None:
    store = GcsMediaStore(BUCKET, gcs.credentials_info(), endpoint=gcs.url)
    src = tmp_path / "seg.ts"
    src.write_bytes(b"segment-bytes")
    await store.put_file(src, "assets/a2/v1/240p/seg_00000.ts", "video/mp2t")
    url = store.signed_url("assets/a2/v1/240p/seg_00000.ts", dt.timedelta(minutes=5))
    assert "X-Goog-Signature=" in url and "X-Goog-Algorithm=GOOG4-RSA-SHA256" in url
    async with httpx.AsyncClient() as client:
        ok = await client.get(url)
        assert ok.status_code == 200 and ok.content == b"segment-bytes"
        other_object = url.replace("seg_00000.ts", "seg_00001.ts")
        assert (await client.get(other_object)).status_code == 403
        sig_at = url.index("X-Goog-Signature=") + len("X-Goog-Signature=")
        flipped = url[:sig_at] + ("0" if url[sig_at] != "0" else "1") + url[sig_at + 1:]
        assert (await client.get(flipped)).status_code == 403
        longer = url.replace("X-Goog-Expires=300", "X-Goog-Expires=86400")
        assert (await client.get(longer)).status_code == 403
    expired = store.signed_url("assets/a2/v1/240p/seg_00000.ts", dt.timedelta(seconds=-1))
    async with httpx.AsyncClient() as client:
        assert (await client.get(expired)).status_code == 403


async def test_playback_from_gcs_signs_every_segment(start_server, gcs, clip, tmp_path: Path) -> None:
    import json
    from urllib.parse import urlsplit

    from tests.media.helpers import assert_every_spelling_meets_the_plan, capped_title, playable_title

    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(gcs.credentials_info()))
    served = await start_server(GCS_BUCKET=BUCKET, GCS_CREDENTIALS_FILE=str(key_file), NAMELESS_GCS_ENDPOINT=gcs.url)
    _, _, play = await playable_title(served, clip)
    assert any(name.endswith("/360p/seg_00000.ts") for name in gcs.objects)
    assert not (served.runtime.settings.data_dir / "media" / "assets").exists()  # nothing on local disk
    manifest = urlsplit(play["manifest_url"]).path
    base = manifest.rsplit("/", 1)[0]
    variant = await served.client.get(f"{base}/240p/index.m3u8")
    assert variant.status_code == 200 and "#EXT-X-ENDLIST" in variant.text, variant.text
    assert 'URI="240p/iframes.m3u8"' in (await served.client.get(manifest)).text
    trick = await served.client.get(f"{base}/240p/iframes.m3u8")  # from the bucket, like the other playlists
    assert trick.status_code == 200 and "#EXT-X-I-FRAMES-ONLY" in trick.text, trick.text
    segment = next(line for line in variant.text.splitlines() if line.startswith("seg_"))
    redirect = await served.client.get(f"{base}/240p/{segment}")
    assert redirect.status_code == 302  # the app never streams video bytes from cloud storage
    signed = redirect.headers["location"]
    assert signed.startswith(gcs.url + "/" + BUCKET + "/") and "X-Goog-Signature=" in signed
    async with httpx.AsyncClient() as client:
        seg = await client.get(signed)
    assert seg.status_code == 200 and seg.content[:1] == b"G" and gcs.signed_fetches == 1
    missing = await served.client.get(f"{base}/1080p/seg_00000.ts")  # allowed by the plan, never encoded
    async with httpx.AsyncClient() as client:
        assert (await client.get(missing.headers["location"])).status_code == 404

    _, _, capped = await capped_title(served, clip, height=240)
    await assert_every_spelling_meets_the_plan(served, urlsplit(capped["manifest_url"]).path.rsplit("/", 1)[0],
                                               allowed="240p", above="360p")
