"""The media pipeline end to end: resumable upload (with a broken chunk), real ffmpeg
transcoding into an HLS ladder, signed playback, and every bad-token and traversal case."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from urllib.parse import urlsplit

import pytest

from server.identity.tokens import derive_key
from server.media.signing import MediaGrant, MediaSigner
from tests.helpers import assert_error, make_staff, signup
from tests.media.helpers import create_movie, upload, wait_job

pytestmark = pytest.mark.asyncio


def broken_chunk(port: int, path: str, token: str, offset: int, data: bytes) -> None:
    """Send headers and half of a chunk, then drop the connection (a phone losing signal)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = (f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Upload-Offset: {offset}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        sock.sendall(head + data[: len(data) // 2])


@pytest.fixture
async def media_server(start_server):
    return await start_server(NAMELESS_UPLOAD_CHUNK_BYTES=str(1024 * 1024))


async def test_upload_resume_transcode_and_signed_playback(media_server, clip) -> None:
    served = media_server
    manager = await make_staff(served, ["content_manager"])
    admin = await make_staff(served, ["admin"])
    viewer = await signup(served.client)
    title_id = await create_movie(served, manager)
    data = clip.read_bytes()

    created = await served.client.post("/api/v1/admin/uploads", headers=manager["headers"], json={
        "content_id": title_id, "filename": "../../etc/passwd", "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest()})
    assert created.status_code == 201, created.text
    up = created.json()
    path = f"/api/v1/admin/uploads/{up['id']}"
    half = len(data) // 2
    first = await served.client.put(path, content=data[:half], headers={
        **manager["headers"], "Upload-Offset": "0", "Content-Type": "application/octet-stream"})
    assert first.json()["offset"] == half
    broken_chunk(served.runtime.port, path, manager["access_token"], half, data[half:])
    await asyncio.sleep(0.2)
    status = (await served.client.get(path, headers=manager["headers"])).json()
    assert status["offset"] == half  # nothing of the broken chunk was recorded
    wrong = await served.client.put(path, content=data[half:], headers={
        **manager["headers"], "Upload-Offset": "0", "Content-Type": "application/octet-stream"})
    assert assert_error(wrong, 409, "offset_mismatch")["details"]["offset"] == half
    rest = await served.client.put(path, content=data[half:], headers={
        **manager["headers"], "Upload-Offset": str(half), "Content-Type": "application/octet-stream"})
    assert rest.json()["offset"] == len(data)
    uploads_dir = served.runtime.settings.data_dir / "uploads"
    assert sorted(p.name for p in uploads_dir.iterdir()) == [f"{up['id']}.part"]
    assert up["filename"] == ".._.._etc_passwd"

    done = await served.client.post(f"{path}/complete", headers=manager["headers"])
    assert done.status_code == 202, done.text
    job = await wait_job(served, manager, done.json()["job_id"])
    assert job["status"] == "done", job
    assert len(job["seen_progress"]) >= 2  # progress was visible while it ran
    assert job["result"]["renditions"] == ["480p", "360p", "240p"]

    # No plan: 402. A complimentary Basic plan capped at 360p: only 360p and 240p are listed.
    start = f"/api/v1/playback/{title_id}/start"
    assert_error(await served.client.post(start, json={}, headers=viewer["headers"]), 402, "subscription_required")
    capped = await served.client.patch("/api/v1/admin/plans/basic", json={"max_height": 360}, headers=admin["headers"])
    assert capped.status_code == 200, capped.text
    granted = await served.client.post(f"/api/v1/admin/users/{viewer['user']['id']}/complimentary",
                                       json={"plan_id": "basic", "days": 30}, headers=admin["headers"])
    assert granted.status_code == 200 and granted.json()["status"] == "active", granted.text
    started = await served.client.post(start, json={}, headers=viewer["headers"])
    assert started.status_code == 200, started.text
    play = started.json()
    assert play["max_height"] == 360 and play["resume_position"] == 0
    manifest = urlsplit(play["manifest_url"]).path
    assert manifest.startswith("/media/") and manifest.endswith("/master.m3u8")
    master = await served.client.get(manifest)
    assert master.status_code == 200
    assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    text = master.text
    assert "RESOLUTION=480x360" in text and "RESOLUTION=320x240" in text and "480p" not in text
    for attr in ("BANDWIDTH=", "AVERAGE-BANDWIDTH=", 'CODECS="avc1.', "mp4a.40.2"):
        assert attr in text
    assert "360p/index.m3u8" in text.splitlines()  # relative: it inherits the token in the path
    base = manifest.rsplit("/", 1)[0]
    variant = await served.client.get(f"{base}/360p/index.m3u8")
    assert variant.status_code == 200 and "#EXT-X-ENDLIST" in variant.text
    segment_uri = next(line for line in variant.text.splitlines() if line.startswith("seg_"))
    segment_url = f"{base}/360p/{segment_uri}"
    segment = await served.client.get(segment_url)
    assert segment.status_code == 200 and segment.headers["content-type"] == "video/mp2t"
    assert segment.content[:1] == b"G"  # MPEG-TS sync byte
    ranged = await served.client.get(segment_url, headers={"Range": "bytes=0-187"})
    assert ranged.status_code == 206 and len(ranged.content) == 188
    head = await served.client.head(segment_url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(segment.content)
    gz = await served.client.get(f"{base}/360p/index.m3u8", headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("content-encoding") == "gzip" and "#EXT-X-ENDLIST" in gz.text

    # Every refusal: quality above the plan, tampered, missing, expired, other title, traversal.
    token, key = manifest.removeprefix("/media/").split("/", 1)
    asset_prefix = key.rsplit("/", 1)[0]
    assert_error(await served.client.get(f"{base}/480p/index.m3u8"), 403, "quality_not_in_plan")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert_error(await served.client.get(f"/media/{tampered}/{key}"), 403, "media_token_invalid")
    assert_error(await served.client.get(f"/media/{key}"), 403, "media_token_invalid")
    signer = MediaSigner(derive_key(served.platform.secret_key, "media-urls"))
    expired = signer.sign(MediaGrant(viewer["user"]["id"], play["session_id"], asset_prefix + "/", 360,
                                     int(time.time()) - 5))
    assert_error(await served.client.get(f"/media/{expired}/{key}"), 403, "media_token_invalid")
    other_asset = signer.sign(MediaGrant(viewer["user"]["id"], play["session_id"],
                                         "assets/000000000000000000000000/v1/", 1080, int(time.time()) + 60))
    assert_error(await served.client.get(f"/media/{other_asset}/{key}"), 403, "media_token_invalid")
    narrow = signer.sign(MediaGrant(viewer["user"]["id"], play["session_id"], asset_prefix + "/240p/", 360,
                                    int(time.time()) + 60))
    assert_error(await served.client.get(f"/media/{narrow}/{asset_prefix}/360p/index.m3u8"), 403,
                 "media_token_invalid")
    assert (await served.client.get(f"/media/{narrow}/{asset_prefix}/240p/index.m3u8")).status_code == 200
    for evil in (f"{base}/360p/../../../../../config/settings.py",
                 f"{base}/360p/%2e%2e/%2e%2e/%2e%2e/secret_key",
                 f"{base}/360p/..%2f..%2fsecret_key",
                 f"/media/{token}/%2e%2e%2fsecret_key",
                 f"/media/{token}/{asset_prefix}/360p/seg_00000.ts%00.m3u8",
                 f"/media/{token}/{asset_prefix}/..%5c..%5csecret_key"):
        resp = await served.client.get(evil)
        assert resp.status_code in (403, 404), evil
        assert resp.headers["content-type"].startswith("application/json"), evil

    # Heartbeats feed watch history and keep the one stream slot of the Basic plan.
    beat = await served.client.post(f"/api/v1/playback/sessions/{play['session_id']}/heartbeat",
                                    json={"position": 3.5, "state": "playing"}, headers=viewer["headers"])
    assert beat.status_code == 200, beat.text
    history = (await served.client.get("/api/v1/me/history", headers=viewer["headers"])).json()
    assert history["items"][0]["position"] == 3.5
    second = await served.client.post(start, json={}, headers=viewer["headers"])
    assert_error(second, 429, "too_many_streams")
    other = await signup(served.client)
    assert_error(await served.client.post(f"/api/v1/playback/sessions/{play['session_id']}/heartbeat",
                                          json={"position": 1, "state": "playing"}, headers=other["headers"]),
                 404, "playback_session_not_found")
    stopped = await served.client.delete(f"/api/v1/playback/sessions/{play['session_id']}", headers=viewer["headers"])
    assert stopped.status_code == 204
    again = await served.client.post(start, json={}, headers=viewer["headers"])
    assert again.status_code == 200 and again.json()["resume_position"] == 3.5


async def test_rejects_what_is_not_a_video_or_not_what_was_declared(media_server) -> None:
    served = media_server
    manager = await make_staff(served, ["content_manager"])
    title_id = await create_movie(served, manager)
    text = b"#!/bin/sh\nrm -rf /\n" * 100
    up = await upload(served, manager, title_id, text, filename="evil.sh")
    resp = await served.client.post(f"/api/v1/admin/uploads/{up['id']}/complete", headers=manager["headers"])
    assert_error(resp, 422, "not_a_video")
    created = await served.client.post("/api/v1/admin/uploads", headers=manager["headers"], json={
        "content_id": title_id, "filename": "x.mp4", "size": 10, "sha256": "0" * 64})
    uid = created.json()["id"]
    await served.client.put(f"/api/v1/admin/uploads/{uid}", content=b"0123456789", headers={
        **manager["headers"], "Upload-Offset": "0", "Content-Type": "application/octet-stream"})
    assert_error(await served.client.post(f"/api/v1/admin/uploads/{uid}/complete", headers=manager["headers"]),
                 422, "checksum_mismatch")
    too_big = await served.client.put(f"/api/v1/admin/uploads/{uid}", content=b"x" * (2 * 1024 * 1024), headers={
        **manager["headers"], "Upload-Offset": "0", "Content-Type": "application/octet-stream"})
    assert_error(too_big, 413, "payload_too_large")
    viewer = await signup(served.client)
    assert_error(await served.client.post("/api/v1/admin/uploads", headers=viewer["headers"], json={
        "content_id": title_id, "filename": "x", "size": 1, "sha256": "0" * 64}), 403, "forbidden")
