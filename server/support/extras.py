"""For agents: private notes and canned responses, sealed to the team key so that any
agent can open them and the viewer never receives them; and for every member, attachments
encrypted with the conversation key on the device (the server keeps opaque bytes)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from server.core import errors
from server.core.clock import now, to_ms
from server.core.ids import new_id
from server.core.permissions import Principal
from server.support.chat import AGENTS_ROOM, NAMESPACE, Emitter, SupportService
from server.support.keys import decode
from storage.objects.store import MediaStore
from storage.support.extras import ExtrasRepository
from storage.support.keys import KeyRepository

MAX_SEALED_BYTES = 16 * 1024
MAX_ATTACHMENT_BYTES = 4 * 1024 * 1024  # a screenshot of a playback error, encrypted
ATTACHMENT_OVERHEAD = 24 + 16  # nonce + MAC before the ciphertext


class SupportExtras:
    def __init__(self, support: SupportService, extras: ExtrasRepository, keys: KeyRepository, store: MediaStore,
                 emitter: Emitter) -> None:
        self._support = support
        self._extras = extras
        self._keys = keys
        self._store = store
        self._emitter = emitter

    async def _team_key(self, key_id: str) -> None:
        if await self._keys.team_key(key_id) is None:
            raise errors.ValidationFailed(details={"fields": {"team_key_id": "not a team key"}})

    async def add_note(self, agent: Principal, conversation_id: str, client_id: str, team_key_id: str,
                       sealed: str) -> dict[str, Any]:
        """Only agents: a note goes to the agents' room, never to the conversation's."""
        if not agent.can("support.handle"):  # a viewer learns nothing about notes, not even that they exist
            raise errors.NotFound("No such conversation.", code="conversation_not_found")
        await self._support.member(agent, conversation_id)
        await self._team_key(team_key_id)
        decode(sealed, "sealed", max_size=MAX_SEALED_BYTES)
        doc = await self._extras.add_note({"_id": new_id(), "conversation_id": conversation_id, "client_id": client_id,
                                           "author_id": agent.user_id, "team_key_id": team_key_id, "sealed": sealed,
                                           "created_ms": to_ms(now())})
        view = note_view(doc)
        await self._emitter.emit("support.note", view, room=AGENTS_ROOM, namespace=NAMESPACE)
        return view

    async def notes(self, agent: Principal, conversation_id: str) -> dict[str, Any]:
        if not agent.can("support.handle"):
            raise errors.NotFound("No such conversation.", code="conversation_not_found")
        await self._support.member(agent, conversation_id)
        return {"items": [note_view(n) for n in await self._extras.notes(conversation_id)], "next_cursor": None}

    async def add_canned(self, agent: Principal, team_key_id: str, sealed: str) -> dict[str, Any]:
        self._agent(agent)
        await self._team_key(team_key_id)
        decode(sealed, "sealed", max_size=MAX_SEALED_BYTES)
        doc = await self._extras.add_canned({"_id": new_id(), "team_key_id": team_key_id, "sealed": sealed,
                                             "created_by": agent.user_id, "created_ms": to_ms(now())})
        return canned_view(doc)

    async def canned(self, agent: Principal) -> dict[str, Any]:
        self._agent(agent)
        return {"items": [canned_view(c) for c in await self._extras.canned()], "next_cursor": None}

    async def delete_canned(self, agent: Principal, canned_id: str) -> None:
        self._agent(agent)
        if not await self._extras.delete_canned(canned_id):
            raise errors.NotFound("No such canned response.", code="canned_not_found")

    async def attach(self, member: Principal, conversation_id: str, blob: bytes) -> dict[str, Any]:
        """`blob` is nonce || secret box, made on the device with the conversation key."""
        await self._support.member(member, conversation_id)
        if len(blob) <= ATTACHMENT_OVERHEAD:
            raise errors.ValidationFailed(details={"fields": {"body": "nonce and ciphertext"}})
        if len(blob) > MAX_ATTACHMENT_BYTES:
            raise errors.PayloadTooLarge(details={"max_bytes": MAX_ATTACHMENT_BYTES})
        attachment_id = new_id()
        key = f"support/{conversation_id}/{attachment_id}.bin"
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "blob"
            local.write_bytes(blob)
            await self._store.put_file(local, key, "application/octet-stream")
        doc = {"_id": attachment_id, "conversation_id": conversation_id, "uploader_id": member.user_id,
               "size": len(blob), "key": key, "created_ms": to_ms(now())}
        await self._extras.add_attachment(doc)
        return {"attachment_id": attachment_id, "size": len(blob)}

    async def attachment(self, member: Principal, conversation_id: str, attachment_id: str) -> bytes:
        await self._support.member(member, conversation_id)
        doc = await self._extras.attachment(conversation_id, attachment_id)
        if doc is None:
            raise errors.NotFound("No such attachment.", code="attachment_not_found")
        return await self._store.read(doc["key"])

    @staticmethod
    def _agent(principal: Principal) -> None:
        if not principal.can("support.handle"):
            raise errors.Forbidden("Support agents only.", code="forbidden")


def note_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "conversation_id": doc["conversation_id"], "author_id": doc["author_id"],
            "team_key_id": doc["team_key_id"], "sealed": doc["sealed"], "created_ms": doc["created_ms"]}


def canned_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "team_key_id": doc["team_key_id"], "sealed": doc["sealed"],
            "created_by": doc["created_by"], "created_ms": doc["created_ms"]}
