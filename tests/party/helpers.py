"""Watch-party test set-up over the real API: a playable title, entitled viewers, and
members speaking the `/party` protocol with python-socketio's client."""

from __future__ import annotations

from typing import Any

from tests.helpers import NamespaceClient, make_staff, signup
from tests.media.helpers import create_movie, upload, wait_job


async def party_title(served, clip) -> str:
    """A published movie with a transcoded clip."""
    manager = await make_staff(served, ["content_manager"])
    title_id = await create_movie(served, manager)
    up = await upload(served, manager, title_id, clip.read_bytes())
    done = await served.client.post(f"/api/v1/admin/uploads/{up['id']}/complete", headers=manager["headers"])
    assert (await wait_job(served, manager, done.json()["job_id"]))["status"] == "done"
    return title_id


async def viewer(served, plan_id: str | None = "premium") -> dict[str, Any]:
    """A new viewer, with a complimentary plan unless `plan_id` is None."""
    user = await signup(served.client)
    if plan_id is not None:
        admin = await make_staff(served, ["admin"])
        granted = await served.client.post(f"/api/v1/admin/users/{user['user']['id']}/complimentary",
                                           json={"plan_id": plan_id, "days": 1}, headers=admin["headers"])
        assert granted.status_code == 200, granted.text
    return user


class Member(NamespaceClient):
    """A real Socket.IO client on `/party` that records every event it receives, in order."""

    def __init__(self, user: dict[str, Any]) -> None:
        super().__init__("/party")
        self.user = user
        self.user_id = user["user"]["id"]
        self.playback: dict[str, Any] = {}  # the seat's stream, from the last create or join

    async def connect(self, url: str) -> None:
        await self.sio.connect(url, auth={"token": self.user["access_token"]}, namespaces=["/party"],
                               transports=["websocket"], wait_timeout=10)

    async def call(self, event: str, data: Any = None) -> dict[str, Any]:
        return await self.sio.call(event, data if data is not None else {}, namespace="/party", timeout=10)

    async def ok(self, event: str, data: Any = None) -> dict[str, Any]:
        reply = await self.call(event, data)
        assert reply.get("ok") is True, (event, reply)
        if "playback" in reply:
            self.playback = reply["playback"]
        return reply



def error_code(reply: dict[str, Any]) -> str:
    assert reply.get("ok") is False, reply
    return reply["error"]["code"]
