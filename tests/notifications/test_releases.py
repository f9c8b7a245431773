"""A new episode reaches those who started the series, live on their devices and in their
inbox, and nobody else."""

from __future__ import annotations

import asyncio

import pytest
import socketio

from tests.catalog.helpers import API, content_manager, series, viewer_account

pytestmark = pytest.mark.asyncio


async def test_new_episode_notifies_who_started_the_series(server) -> None:
    cm = await content_manager(server)
    show, episodes = await series(server, cm, seasons=1, episodes=1, title="Night Shift")
    fan, stranger = await viewer_account(server), await viewer_account(server)
    await server.runtime.services.history.record_progress(fan["viewer"], episodes[0]["id"], 120, 1000)
    got: list[dict] = []
    client = socketio.AsyncClient(reconnection=False)
    client.on("notification", got.append)
    await client.connect(server.url, auth={"token": fan["access_token"]}, transports=["websocket"])
    resp = await server.client.post(f"{API}/admin/episodes", headers=cm["headers"], json={
        "title_id": show["id"], "season": 1, "number": 2, "name": "The Return", "runtime_s": 1000})
    assert resp.status_code == 201, resp.text
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.02)
    await client.disconnect()
    assert got and got[0]["kind"] == "new_episode" and got[0]["title"] == "New episode of Night Shift"
    assert got[0]["data"] == {"title_id": show["id"], "episode_id": resp.json()["id"]}
    inbox = (await server.client.get(f"{API}/me/notifications", headers=fan["headers"])).json()["items"]
    assert [n["kind"] for n in inbox] == ["new_episode"]
    assert (await server.client.get(f"{API}/me/notifications", headers=stranger["headers"])).json()["items"] == []
