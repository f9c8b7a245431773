"""Namespace `/support`: encrypted support chat (docs/support-chat-crypto.md).

Every event names its conversation, and `SupportService.member` decides, for each one,
whether this user belongs to it; the namespace only keeps which rooms its sockets joined.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any, Literal

from pydantic import Field

from realtime.events import Ack, event, ok
from realtime.gateway import AuthedNamespace, Gateway
from server.core import errors
from server.core.fields import Body, Id
from server.core.permissions import Principal
from server.support.chat import AGENTS_ROOM, NAMESPACE, ONLINE_TTL_S, SupportService, conversation_room

ClientId = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class ConversationBody(Body):
    conversation_id: Id


class SendBody(ConversationBody):
    client_id: str = ClientId
    nonce: str = Field(max_length=64)
    ciphertext: str = Field(max_length=24 * 1024)


class ReadBody(ConversationBody):
    seq: int = Field(ge=0)


class TransferBody(ConversationBody):
    to: Id | None = None


class StatusBody(ConversationBody):
    status: Literal["open", "pending", "resolved"]


class PresenceBody(Body):
    available: bool
    capacity: int | None = Field(default=None, ge=1, le=50)


class SupportChannel(AuthedNamespace):
    def __init__(self, gateway: Gateway, support: SupportService) -> None:
        super().__init__(NAMESPACE, gateway)
        self.support = support
        self._users: dict[str, set[str]] = defaultdict(set)  # user id -> this process's sids
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._refresh_presence())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh_presence(self) -> None:
        while True:
            await asyncio.sleep(ONLINE_TTL_S / 3)
            with contextlib.suppress(Exception):
                agents, viewers = [], []
                for user_id, sids in list(self._users.items()):
                    principal = self.gateway.connections.principal(self.namespace, next(iter(sids)))
                    (agents if principal is not None and principal.can("support.handle") else viewers).append(user_id)
                await self.support.seen(viewers, agents)

    async def joined(self, sid: str, principal: Principal) -> None:
        self._users[principal.user_id].add(sid)
        await self.support.seen([principal.user_id], [])
        if principal.can("support.handle"):
            await self.gateway.sio.enter_room(sid, AGENTS_ROOM, namespace=self.namespace)
            await self.support.set_presence(principal.user_id, online=True)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        principal = self.gateway.connections.principal(self.namespace, sid)
        await super().on_disconnect(sid, reason)
        if principal is None:
            return
        sids = self._users.get(principal.user_id, set())
        sids.discard(sid)
        if not sids:
            self._users.pop(principal.user_id, None)
            await self.support.gone(principal.user_id, agent=principal.can("support.handle"))

    def _agent(self, principal: Principal) -> None:
        if not principal.can("support.handle"):
            raise errors.Forbidden("Support agents only.", code="forbidden")

    @event("support.join", ConversationBody)
    async def on_support_join(self, sid: str, principal: Principal, payload: ConversationBody) -> Ack:
        last_seq = await self.support.join(principal, payload.conversation_id)
        await self.gateway.sio.enter_room(sid, conversation_room(payload.conversation_id), namespace=self.namespace)
        return ok(last_seq=last_seq)

    @event("support.leave", ConversationBody)
    async def on_support_leave(self, sid: str, principal: Principal, payload: ConversationBody) -> Ack:
        await self.gateway.sio.leave_room(sid, conversation_room(payload.conversation_id), namespace=self.namespace)
        return ok()

    @event("support.send", SendBody)
    async def on_support_send(self, sid: str, principal: Principal, payload: SendBody) -> Ack:
        stored = await self.support.send(principal, payload.conversation_id, payload.client_id, payload.nonce,
                                         payload.ciphertext)
        return ok(**stored)

    @event("support.typing", ConversationBody)
    async def on_support_typing(self, sid: str, principal: Principal, payload: ConversationBody) -> Ack:
        await self.support.member(principal, payload.conversation_id)
        await self.gateway.sio.emit("support.typing", {"conversation_id": payload.conversation_id,
                                                       "user_id": principal.user_id},
                                    room=conversation_room(payload.conversation_id), skip_sid=sid,
                                    namespace=self.namespace)
        return ok()

    @event("support.read", ReadBody)
    async def on_support_read(self, sid: str, principal: Principal, payload: ReadBody) -> Ack:
        await self.support.read(principal, payload.conversation_id, payload.seq)
        return ok()

    @event("support.claim", ConversationBody)
    async def on_support_claim(self, sid: str, principal: Principal, payload: ConversationBody) -> Ack:
        self._agent(principal)
        return ok(conversation=await self.support.claim(principal, payload.conversation_id))

    @event("support.release", ConversationBody)
    async def on_support_release(self, sid: str, principal: Principal, payload: ConversationBody) -> Ack:
        self._agent(principal)
        return ok(conversation=await self.support.release(principal, payload.conversation_id))

    @event("support.transfer", TransferBody)
    async def on_support_transfer(self, sid: str, principal: Principal, payload: TransferBody) -> Ack:
        self._agent(principal)
        if payload.to is None:
            raise errors.ValidationFailed(details={"fields": {"to": "the agent to hand the conversation to"}})
        return ok(conversation=await self.support.transfer(principal, payload.conversation_id, payload.to))

    @event("support.status", StatusBody)
    async def on_support_status(self, sid: str, principal: Principal, payload: StatusBody) -> Ack:
        self._agent(principal)
        return ok(conversation=await self.support.set_status(principal, payload.conversation_id, payload.status))

    @event("support.presence", PresenceBody)
    async def on_support_presence(self, sid: str, principal: Principal, payload: PresenceBody) -> Ack:
        self._agent(principal)
        return ok(**await self.support.set_presence(principal.user_id, available=payload.available,
                                                     capacity=payload.capacity, online=True))
