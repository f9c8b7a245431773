"""A media link is worth exactly what its live stream is worth: every spelling of a path
meets the plan check, and the link ends with the stream, the sign-in, the account or the
plan, on every process."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import jwt
import pytest

from tests.helpers import assert_error, make_staff, raw_get
from tests.media.helpers import assert_every_spelling_meets_the_plan, capped_title

pytestmark = pytest.mark.asyncio


async def test_every_spelling_of_a_rendition_meets_the_plan_check(server, clip) -> None:
    _, _, play = await capped_title(server, clip)
    base = urlsplit(play["manifest_url"]).path.rsplit("/", 1)[0]
    await assert_every_spelling_meets_the_plan(server, base, allowed="240p", above="360p")


async def eventually_refused(served, path: str, code: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        resp = await served.client.get(path)
        if resp.status_code != 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert resp.status_code == 403, f"{path} still answers {resp.status_code}"
    assert_error(resp, 403, code)


async def stream_paths(served, play: dict) -> tuple[str, str]:
    manifest = urlsplit(play["manifest_url"]).path
    base = manifest.rsplit("/", 1)[0]
    segment = f"{base}/240p/seg_00000.ts"
    assert (await served.client.get(manifest)).status_code == 200
    assert (await served.client.get(segment)).status_code == 200
    return manifest, segment


async def test_the_link_ends_when_the_stream_stops_and_a_new_stream_may_start(any_server, clip) -> None:
    served = any_server
    title_id, viewer, play = await capped_title(served, clip, height=480)
    manifest, segment = await stream_paths(served, play)
    start = f"/api/v1/playback/{title_id}/start"
    assert_error(await served.client.post(start, json={}, headers=viewer["headers"]), 429, "too_many_streams")
    stopped = await served.client.delete(f"/api/v1/playback/sessions/{play['session_id']}",
                                         headers=viewer["headers"])
    assert stopped.status_code == 204
    await eventually_refused(served, segment, "stream_ended")
    assert_error(await served.client.get(manifest), 403, "stream_ended")
    second = await served.client.post(start, json={}, headers=viewer["headers"])
    assert second.status_code == 200, second.text
    await stream_paths(served, second.json())
    assert_error(await served.client.get(segment), 403, "stream_ended")  # the first link stays dead


async def test_the_link_ends_with_the_sign_in_the_account_and_the_plan(any_server, clip) -> None:
    served = any_server
    admin = await make_staff(served, ["admin"])
    title_id, viewer, play = await capped_title(served, clip, height=480)
    start = f"/api/v1/playback/{title_id}/start"

    _, segment = await stream_paths(served, play)
    ended = await served.client.delete(f"/api/v1/admin/users/{viewer['user']['id']}/complimentary",
                                       headers=admin["headers"])
    assert ended.status_code == 200, ended.text
    await eventually_refused(served, segment, "subscription_required")

    granted = await served.client.post(f"/api/v1/admin/users/{viewer['user']['id']}/complimentary",
                                       json={"plan_id": "basic", "days": 1}, headers=admin["headers"])
    assert granted.status_code == 200, granted.text
    await served.client.delete(f"/api/v1/playback/sessions/{play['session_id']}", headers=viewer["headers"])
    again = await served.client.post(start, json={}, headers=viewer["headers"])
    assert again.status_code == 200, again.text
    _, segment = await stream_paths(served, again.json())
    sid = jwt.decode(viewer["access_token"], options={"verify_signature": False})["sid"]
    revoked = await served.client.delete(f"/api/v1/me/sessions/{sid}", headers=viewer["headers"])
    assert revoked.status_code == 204, revoked.text
    await eventually_refused(served, segment, "session_revoked")


async def test_suspension_ends_the_link(server, clip) -> None:
    admin = await make_staff(server, ["admin"])
    _, viewer, play = await capped_title(server, clip, height=480)
    _, segment = await stream_paths(server, play)
    suspended = await server.client.post(f"/api/v1/admin/users/{viewer['user']['id']}/suspend",
                                         json={"reason": "chargeback fraud"}, headers=admin["headers"])
    assert suspended.status_code == 200, suspended.text
    await eventually_refused(server, segment, "session_revoked")


async def test_another_process_drops_the_link_within_a_second(start_server, redis_url, clip) -> None:
    a = await start_server(REDIS_URL=redis_url)
    b = await start_server(REDIS_URL=redis_url, NAMELESS_MONGO_DB=a.runtime.settings.mongo_db,
                           NAMELESS_DATA_DIR=str(a.runtime.settings.data_dir), NAMELESS_JOB_WORKERS="0")
    _, viewer, play = await capped_title(a, clip, height=480)
    _, segment = await stream_paths(b, play)  # B now holds the stream as live in its cache
    stopped = await a.client.delete(f"/api/v1/playback/sessions/{play['session_id']}", headers=viewer["headers"])
    assert stopped.status_code == 204
    await eventually_refused(b, segment, "stream_ended", timeout=1.0)


async def test_a_stream_without_heartbeats_loses_its_link(server, clip, monkeypatch) -> None:
    """A player that stops reporting gives up its slot after the slot's lifetime, and its
    link with it (otherwise skipping heartbeats would dodge the stream limit)."""
    from server.media import access

    _, _, play = await capped_title(server, clip, height=480)
    _, segment = await stream_paths(server, play)
    monkeypatch.setattr(access, "SLOT_TTL_MS", 0)
    await eventually_refused(server, segment, "stream_ended")


async def test_raw_dot_segments_are_refused_before_any_file(server, clip) -> None:
    _, _, play = await capped_title(server, clip)
    manifest = urlsplit(play["manifest_url"]).path
    token, key = manifest.removeprefix("/media/").split("/", 1)
    prefix = key.rsplit("/", 1)[0]
    for path in (f"/media/{token}/{prefix}/./master.m3u8", f"/media/{token}/{prefix}/240p/./index.m3u8",
                 f"/media/{token}/./{prefix}/240p/index.m3u8"):
        status, body = await raw_get(server, path)
        assert status == 404 and b"media_not_found" in body, (path, status)
