"""Namespace `/party`: watch parties (docs/watch-party.md).

A socket sits in at most one party. Every change goes through the party service, which
publishes the party's events on one pub/sub channel; each process relays them to the
party's room among its own sockets, so every member sees every change once and in order.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Literal

from pydantic import Field, model_validator

from realtime.events import Ack, event, ok
from realtime.gateway import AuthedNamespace, Gateway
from server.core import errors
from server.core.fields import Body, Id
from server.core.permissions import Principal
from server.party.service import EVENTS_CHANNEL, PartyService


class TimeSync(Body):
    model_config = Body.model_config | {"strict": False}
    t0: float


class CreateBody(Body):
    content_id: Id
    profile_id: Id | None = None
    everyone_controls: bool = False


class JoinBody(Body):
    invite_code: str | None = Field(default=None, min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    party_id: Id | None = None
    profile_id: Id | None = None

    @model_validator(mode="after")
    def one_way_in(self) -> JoinBody:
        if (self.invite_code is None) == (self.party_id is None):
            raise ValueError("send invite_code, or party_id to take your seat back")
        return self


class ControlBody(Body):
    model_config = Body.model_config | {"strict": False}
    action: Literal["play", "pause", "seek", "rate"]
    position: float | None = Field(default=None, ge=0, le=48 * 3600)
    rate: float | None = Field(default=None, ge=0.5, le=2.0)
    seq: int | None = Field(default=None, ge=0)


class PositionBody(Body):
    model_config = Body.model_config | {"strict": False}
    position: float | None = Field(default=None, ge=0, le=48 * 3600)


class ChatBody(Body):
    text: str = Field(max_length=2000)


class ReactBody(Body):
    emoji: str = Field(max_length=16)


class HostBody(Body):
    user_id: Id


class SettingsBody(Body):
    everyone_controls: bool


def party_room(party_id: str) -> str:
    return f"party:{party_id}"


class PartyChannel(AuthedNamespace):
    def __init__(self, gateway: Gateway, parties: PartyService) -> None:
        super().__init__("/party", gateway)
        self.parties = parties
        self._party_of: dict[str, str] = {}  # sid -> party id, for this process's sockets
        self._base: dict[str, str] = {}  # sid -> the origin the socket came to, for media links
        self._unsubscribe: Any = None

    async def start(self) -> None:
        self._unsubscribe = await self.gateway.platform.pubsub.subscribe(EVENTS_CHANNEL, self._relay)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            await self._unsubscribe()

    async def _relay(self, message: dict[str, Any]) -> None:
        party_id = message.get("party_id")
        if not isinstance(party_id, str):
            return
        room = party_room(party_id)
        for name, data in message.get("events", []):
            await self.gateway.sio.emit(name, data, room=room, namespace=self.namespace, ignore_queue=True)
            self.gateway.metrics.socket_events_out.labels(self.namespace, name).inc()
            if name == "party.ended":
                for sid in [s for s, p in self._party_of.items() if p == party_id]:
                    await self._forget(sid)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await super().on_connect(sid, environ, auth)
        public = self.gateway.platform.settings.public_url.rstrip("/")
        scheme = "https" if environ.get("wsgi.url_scheme") == "https" else "http"
        self._base[sid] = public or f"{scheme}://{environ.get('HTTP_HOST', '')}"

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        principal = self.gateway.connections.principal(self.namespace, sid)
        party_id = self._party_of.pop(sid, None)
        self._base.pop(sid, None)
        await super().on_disconnect(sid, reason)
        if principal is not None and party_id is not None:
            self.parties.disconnected(principal.user_id, party_id, sid)

    async def _seat(self, sid: str, party_id: str) -> None:
        previous = self._party_of.get(sid)
        if previous is not None and previous != party_id:
            await self.gateway.sio.leave_room(sid, party_room(previous), namespace=self.namespace)
        self._party_of[sid] = party_id
        await self.gateway.sio.enter_room(sid, party_room(party_id), namespace=self.namespace)

    async def _forget(self, sid: str) -> None:
        party_id = self._party_of.pop(sid, None)
        if party_id is not None:
            with contextlib.suppress(Exception):
                await self.gateway.sio.leave_room(sid, party_room(party_id), namespace=self.namespace)

    def _current(self, sid: str) -> str:
        party_id = self._party_of.get(sid)
        if party_id is None:
            raise errors.NotFound("Join a party first.", code="not_in_party")
        return party_id

    def _linked(self, sid: str, reply: dict[str, Any]) -> dict[str, Any]:
        playback = dict(reply["playback"])
        playback["manifest_url"] = self._base.get(sid, "") + playback.pop("manifest_path")
        return {**reply, "playback": playback}

    @event("time.sync", TimeSync)
    async def on_time_sync(self, sid: str, principal: Principal, payload: TimeSync) -> Ack:
        return ok(t0=payload.t0, server_ms=time.time() * 1000)

    @event("party.create", CreateBody)
    async def on_party_create(self, sid: str, principal: Principal, payload: CreateBody) -> Ack:
        if sid in self._party_of:
            raise errors.Conflict("Leave your party first.", code="already_in_party")
        reply = await self.parties.create(principal, sid, payload.content_id, payload.profile_id,
                                          payload.everyone_controls)
        await self._seat(sid, reply["party_id"])
        return ok(**self._linked(sid, reply))

    @event("party.join", JoinBody)
    async def on_party_join(self, sid: str, principal: Principal, payload: JoinBody) -> Ack:
        current = self._party_of.get(sid)
        target = payload.party_id or await self.parties.party_for_invite(payload.invite_code or "")
        if current is not None and current != target:
            raise errors.Conflict("Leave your party first.", code="already_in_party")
        # In the room before the state is read: a change made meanwhile reaches this socket
        # as an event (the client keeps the newest seq), never falls between reply and room.
        await self.gateway.sio.enter_room(sid, party_room(target), namespace=self.namespace)
        try:
            reply = await self.parties.join(principal, sid, target, by_invite=payload.invite_code is not None,
                                            profile_id=payload.profile_id)
        except BaseException:
            if current is None:
                await self.gateway.sio.leave_room(sid, party_room(target), namespace=self.namespace)
            raise
        await self._seat(sid, reply["party_id"])
        return ok(**self._linked(sid, reply))

    @event("party.leave")
    async def on_party_leave(self, sid: str, principal: Principal, payload: object) -> Ack:
        party_id = self._current(sid)
        await self._forget(sid)
        await self.parties.leave(principal.user_id, party_id)
        return ok()

    @event("party.control", ControlBody)
    async def on_party_control(self, sid: str, principal: Principal, payload: ControlBody) -> Ack:
        state = await self.parties.control(principal.user_id, self._current(sid), payload.action,
                                           position=payload.position, rate=payload.rate, based_on=payload.seq)
        return ok(state=state)

    @event("party.buffering", PositionBody)
    async def on_party_buffering(self, sid: str, principal: Principal, payload: PositionBody) -> Ack:
        return ok(state=await self.parties.buffering(principal.user_id, self._current(sid)))

    @event("party.ready", PositionBody)
    async def on_party_ready(self, sid: str, principal: Principal, payload: PositionBody) -> Ack:
        return ok(state=await self.parties.ready(principal.user_id, self._current(sid)))

    @event("party.chat", ChatBody)
    async def on_party_chat(self, sid: str, principal: Principal, payload: ChatBody) -> Ack:
        return ok(id=await self.parties.chat(principal.user_id, self._current(sid), payload.text))

    @event("party.react", ReactBody)
    async def on_party_react(self, sid: str, principal: Principal, payload: ReactBody) -> Ack:
        return ok(id=await self.parties.react(principal.user_id, self._current(sid), payload.emoji))

    @event("party.host", HostBody)
    async def on_party_host(self, sid: str, principal: Principal, payload: HostBody) -> Ack:
        return ok(host_id=await self.parties.hand_over(principal.user_id, self._current(sid), payload.user_id))

    @event("party.settings", SettingsBody)
    async def on_party_settings(self, sid: str, principal: Principal, payload: SettingsBody) -> Ack:
        everyone = await self.parties.set_everyone_controls(principal.user_id, self._current(sid),
                                                            payload.everyone_controls)
        return ok(everyone_controls=everyone)
