"""End-to-end-encrypted support chat clients, as the apps and the console would be: keys
made on the device with pynacl, sealed boxes for keys, secret boxes for messages, real
Socket.IO clients on `/support`."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.secret import SecretBox
from nacl.utils import random

from tests.helpers import NamespaceClient, make_staff, signup


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


class Device(NamespaceClient):
    """One user's device: its own key pair, registered over the API, and a socket."""

    def __init__(self, served, user: dict[str, Any], device_id: str | None = None) -> None:
        super().__init__("/support")
        self.served = served
        self.user = user
        self.user_id = user.get("id") or user["user"]["id"]
        self.device_id = device_id or secrets.token_hex(6)
        self.private = PrivateKey.generate()
        self.key_id = ""
        self.team_private: PrivateKey | None = None
        self.keys: dict[str, bytes] = {}  # conversation id -> conversation key

    @property
    def headers(self) -> dict[str, str]:
        return self.user["headers"]

    async def register(self) -> None:
        resp = await self.served.client.put(f"/api/v1/me/keys/{self.device_id}", headers=self.headers,
                                            json={"public_key": b64(bytes(self.private.public_key))})
        assert resp.status_code == 200, resp.text
        self.key_id = resp.json()["key_id"]

    async def connect(self, url: str | None = None) -> None:
        await self.sio.connect(url or self.served.url, auth={"token": self.user["access_token"]},
                               namespaces=["/support"], transports=["websocket"], wait_timeout=10)

    async def call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        return await self.sio.call(event, data, namespace="/support", timeout=10)

    async def open(self, subject: str) -> dict[str, Any]:
        """A new conversation key, sealed to the team key and to this device."""
        team = (await self.served.client.get("/api/v1/support/team-key", headers=self.headers)).json()
        key = random(SecretBox.KEY_SIZE)
        wrapped = {team["key_id"]: b64(SealedBox(PublicKey(unb64(team["public_key"]))).encrypt(key)),
                   self.key_id: b64(SealedBox(self.private.public_key).encrypt(key))}
        resp = await self.served.client.post("/api/v1/support/conversations", headers=self.headers,
                                             json={"subject": subject, "wrapped_keys": wrapped})
        assert resp.status_code == 201, resp.text
        conversation = resp.json()
        self.keys[conversation["id"]] = key
        return conversation

    async def load_team_key(self) -> None:
        grants = (await self.served.client.get("/api/v1/support/team-keys/grants", headers=self.headers)).json()
        mine = [g for g in grants["items"] if g["device_key_id"] == self.key_id]
        assert mine, grants
        self.team_private = PrivateKey(SealedBox(self.private).decrypt(unb64(mine[-1]["sealed_private_key"])))

    async def key_for(self, conversation_id: str) -> bytes:
        if conversation_id not in self.keys:
            conv = (await self.served.client.get(f"/api/v1/support/conversations/{conversation_id}",
                                                 headers=self.headers)).json()
            wrapped = conv["wrapped_keys"]
            if self.key_id in wrapped:
                self.keys[conversation_id] = SealedBox(self.private).decrypt(unb64(wrapped[self.key_id]))
            else:
                assert self.team_private is not None
                sealed = unb64(wrapped[conv["team_key_id"]])
                self.keys[conversation_id] = SealedBox(self.team_private).decrypt(sealed)
        return self.keys[conversation_id]

    async def send(self, conversation_id: str, text: str, client_id: str | None = None) -> dict[str, Any]:
        box = SecretBox(await self.key_for(conversation_id))
        nonce = random(SecretBox.NONCE_SIZE)
        sealed = box.encrypt(text.encode(), nonce)
        return await self.call("support.send", {"conversation_id": conversation_id,
                                                "client_id": client_id or secrets.token_hex(8),
                                                "nonce": b64(nonce), "ciphertext": b64(sealed.ciphertext)})

    async def decrypt(self, message: dict[str, Any]) -> str:
        box = SecretBox(await self.key_for(message["conversation_id"]))
        return box.decrypt(unb64(message["ciphertext"]), unb64(message["nonce"])).decode()



def grant_path(team_key_id: str, device_key_id: str) -> str:
    """Where a supervisor stores a grant: `team:<n>` and `u:<user>:<device>` in path form."""
    _, user_id, device_id = device_key_id.split(":", 2)
    return f"/api/v1/admin/support/team-keys/{team_key_id.split(':')[1]}/grants/{user_id}/{device_id}"


class TeamKey:
    """A supervisor's device that made the team key pair and registered its public half;
    it seals the private half to agents' devices."""

    def __init__(self, supervisor: Device, private: PrivateKey, key_id: str) -> None:
        self.supervisor = supervisor
        self.private = private
        self.key_id = key_id

    async def grant(self, device_key_id: str, public_key: bytes) -> None:
        sealed = SealedBox(PublicKey(public_key)).encrypt(bytes(self.private))
        granted = await self.supervisor.served.client.put(
            grant_path(self.key_id, device_key_id),
            headers=self.supervisor.headers, json={"sealed_private_key": b64(sealed)})
        assert granted.status_code == 204, granted.text


async def team_key(served) -> TeamKey:
    supervisor = Device(served, await make_staff(served, ["admin"]))
    await supervisor.register()
    private = PrivateKey.generate()
    made = await served.client.post("/api/v1/admin/support/team-keys", headers=supervisor.headers,
                                    json={"public_key": b64(bytes(private.public_key))})
    assert made.status_code == 201, made.text
    return TeamKey(supervisor, private, made.json()["key_id"])


async def support_team(served, agents: int = 1) -> tuple[Device, list[Device]]:
    """A supervisor who makes the team key in their own device and seals it to each agent's
    device (and their own); the agents' devices then open their grant."""
    team = await team_key(served)
    crew = []
    for _ in range(agents):
        agent = Device(served, await make_staff(served, ["support_agent"]))
        await agent.register()
        crew.append(agent)
    for device in [team.supervisor, *crew]:
        await team.grant(device.key_id, bytes(device.private.public_key))
        await device.load_team_key()
    return team.supervisor, crew


async def support_viewer(served) -> Device:
    device = Device(served, await signup(served.client))
    await device.register()
    return device
