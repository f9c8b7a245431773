"""Support conversations: open, queue and assign, the message log (ciphertext only, one
sequence per conversation, stored before acknowledged, once per client id), read state,
agent presence and capacity.

Who may touch a conversation is decided in `member()` for every REST call and every event:
its viewer, the agent it is assigned to, or, while it waits in the queue, any agent (to
claim it). Anyone else gets the same 404 as for a conversation that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

from server.core import errors
from server.core.clock import now, to_ms
from server.core.ids import new_id
from server.core.permissions import Principal
from server.notifications.inbox import NotificationService
from server.support.keys import decode
from server.support.messages import MessageLog
from storage.identity.users import UserRepository
from storage.state.ephemeral import EphemeralStore
from storage.state.pubsub import PubSub
from storage.state.ratelimit import RateLimiter
from storage.support.agents import AgentRepository
from storage.support.conversations import ConversationRepository
from storage.support.keys import KeyRepository

log = logging.getLogger("nameless.support")

NAMESPACE = "/support"
AGENTS_ROOM = "support:agents"
NONCE_BYTES = 24
MAX_CIPHERTEXT_BYTES = 16 * 1024
DEFAULT_CAPACITY = 5
ONLINE_TTL_S = 60.0  # presence lapses this long after a process last saw the socket
STATUSES = ("open", "pending", "resolved")
ASSIGNMENT_CHANNEL = "support.assignment"  # {"conversation_id"}: who may write to it changed
MEMBERSHIP_TTL_S = 30.0


def conversation_room(conversation_id: str) -> str:
    return f"support:{conversation_id}"


class Emitter(Protocol):
    async def emit(self, event: str, data: Any, *, room: str, namespace: str = "/") -> None: ...


class SupportService:
    def __init__(self, conversations: ConversationRepository, keys: KeyRepository, agents: AgentRepository,
                 users: UserRepository, notifications: NotificationService, emitter: Emitter,
                 ephemeral: EphemeralStore, limiter: RateLimiter, pubsub: PubSub,
                 messages_per_minute: int = 120) -> None:
        self._send_limit = (messages_per_minute, 60)
        self._pubsub = pubsub
        self._members: dict[str, tuple[float, dict[str, Any]]] = {}
        self._log = MessageLog(conversations)
        self._outgoing: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue()
        self._relaying: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None
        self._conversations = conversations
        self._users = users
        self._agents = agents
        self._keys = keys
        self._notifications = notifications
        self._emitter = emitter
        self._ephemeral = ephemeral
        self._limiter = limiter
        self._assigning = asyncio.Lock()

    # --- conversations --------------------------------------------------------------

    async def open(self, viewer: Principal, subject: str, wrapped_keys: dict[str, str]) -> dict[str, Any]:
        """The conversation key must be sealed to the active team key, and to nothing but
        the team's keys and the viewer's own devices."""
        team = await self._keys.active_team_key()
        if team is None:
            raise errors.ServiceUnavailable("Support chat has no team key yet.", code="support_not_configured")
        own = {d["_id"] for d in await self._keys.devices(viewer.user_id)}
        for key_id, sealed in wrapped_keys.items():
            decode(sealed, f"wrapped_keys.{key_id}", 80)
            if key_id != team["_id"] and key_id not in own:
                raise errors.ValidationFailed(details={"fields": {f"wrapped_keys.{key_id}": "not a key of yours "
                                                                  "or of the support team"}})
        if team["_id"] not in wrapped_keys:
            raise errors.ValidationFailed(details={"fields": {"wrapped_keys": f"must include {team['_id']}"}})
        at = to_ms(now())
        doc = await self._conversations.create({
            "_id": new_id(), "viewer_id": viewer.user_id, "subject": subject, "status": "open",
            "assignee_id": None, "queued": True, "created_ms": at, "updated_ms": at,
            "wrapped_keys": wrapped_keys, "team_key_id": team["_id"], "read": {}, "rating": None,
        })
        await self._emitter.emit("support.queue", {"conversation": view(doc, None, 0)}, room=AGENTS_ROOM,
                                 namespace=NAMESPACE)
        await self.assign_queued()
        return view(await self._conversations.get(doc["_id"]) or doc, viewer.user_id, 0)

    async def add_keys(self, principal: Principal, conversation_id: str,
                       wrapped_keys: dict[str, str]) -> dict[str, Any]:
        """More sealed copies of the conversation key: for the viewer's new device (made by
        one of their devices that holds the key), or for a new team key after a rotation.
        Copies are only added, never replaced."""
        conversation = await self.member(principal, conversation_id)
        own = {d["_id"] for d in await self._keys.devices(principal.user_id)}
        for key_id, sealed in wrapped_keys.items():
            decode(sealed, f"wrapped_keys.{key_id}", 80)
            team = key_id.startswith("team:") and await self._keys.team_key(key_id) is not None
            mine = key_id in own and principal.user_id == conversation["viewer_id"]
            if not (team or mine):
                raise errors.ValidationFailed(details={"fields": {f"wrapped_keys.{key_id}": "not a key of yours "
                                                                  "or of the support team"}})
        added = {k: v for k, v in wrapped_keys.items() if k not in conversation["wrapped_keys"]}
        updated = conversation
        if added:
            merged = {**conversation["wrapped_keys"], **added}
            updated = await self._conversations.update(conversation_id, {"wrapped_keys": merged}) or conversation
        return await self._view(updated, principal.user_id)

    async def member(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        """The conversation, if this user belongs to it; the same 404 otherwise."""
        doc = await self._conversations.get(conversation_id)
        if doc is not None and belongs(principal, doc):
            return doc
        raise errors.NotFound("No such conversation.", code="conversation_not_found")

    async def _view(self, doc: dict[str, Any], user_id: str | None = None) -> dict[str, Any]:
        return view(doc, user_id, await self._conversations.last_seq(doc["_id"]))

    async def join(self, principal: Principal, conversation_id: str) -> int:
        """Membership checked; the latest sequence number, to fetch what was missed."""
        await self.member(principal, conversation_id)
        return await self._conversations.last_seq(conversation_id)

    async def get(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        return await self._view(await self.member(principal, conversation_id), principal.user_id)

    async def listing(self, principal: Principal) -> dict[str, Any]:
        """A viewer's own conversations; an agent's assigned ones and the queue."""
        if principal.can("support.handle"):
            mine = await self._conversations.assigned_to(principal.user_id)
            queue = await self._conversations.queue()
            docs = [*mine, *queue]
        else:
            docs = await self._conversations.of_viewer(principal.user_id)
        latest = await self._conversations.last_seqs([d["_id"] for d in docs])
        return {"items": [view(d, principal.user_id, latest[d["_id"]]) for d in docs], "next_cursor": None}

    async def history(self, principal: Principal, conversation_id: str, after_seq: int,
                      limit: int) -> dict[str, Any]:
        await self.member(principal, conversation_id)
        items = [message_view(m) for m in await self._conversations.messages_after(conversation_id, after_seq, limit)]
        return {"items": items, "last_seq": items[-1]["seq"] if items else after_seq,
                "more": len(items) == limit}

    # --- messages ---------------------------------------------------------------------

    async def send(self, principal: Principal, conversation_id: str, client_id: str, nonce: str,
                   ciphertext: str) -> dict[str, Any]:
        """Stored, then acknowledged; relayed afterwards, in order, by `_relay`. Membership
        comes from a cache that assignment changes clear on every process; the write joins
        the message log's next batch."""
        decode(nonce, "nonce", NONCE_BYTES)
        decode(ciphertext, "ciphertext", max_size=MAX_CIPHERTEXT_BYTES)
        conversation = await self._member_cached(principal, conversation_id)
        if principal.user_id not in (conversation["viewer_id"], conversation["assignee_id"]):
            raise errors.Forbidden("Claim the conversation before replying.", code="not_assigned")
        decision = await self._limiter.hit(f"support-send:{principal.user_id}", *self._send_limit)
        if not decision.allowed:
            raise errors.RateLimited(decision.retry_after, "Too many messages; slow down.")
        stored, duplicate = await self._log.append({
            "_id": new_id(), "conversation_id": conversation_id, "client_id": client_id,
            "sender_id": principal.user_id, "nonce": nonce, "ciphertext": ciphertext, "created_ms": to_ms(now())})
        if not duplicate:
            self._outgoing.put_nowait((stored, conversation["viewer_id"]))
        return {"message_id": stored["_id"], "seq": stored["seq"], "duplicate": duplicate}

    async def _relay(self) -> None:
        """Stored messages to their conversation's room, and a notification to a viewer who
        is not connected when an agent writes. Off the acknowledgement's path: a sender waits
        for the database only. What waits goes out in waves of one message per conversation,
        concurrently within a wave, so each conversation's messages leave in the order they
        were stored while the Redis round trips of different conversations overlap."""
        while True:
            waiting = [await self._outgoing.get()]
            while not self._outgoing.empty():
                waiting.append(self._outgoing.get_nowait())
            while waiting:
                wave: dict[str, tuple[dict[str, Any], str]] = {}
                later = []
                for item in waiting:
                    if item[0]["conversation_id"] in wave:
                        later.append(item)
                    else:
                        wave[item[0]["conversation_id"]] = item
                await asyncio.gather(*(self._relay_one(*item) for item in wave.values()))
                waiting = later

    async def _relay_one(self, stored: dict[str, Any], viewer_id: str) -> None:
        try:
            await self._emitter.emit("support.message", message_view(stored),
                                     room=conversation_room(stored["conversation_id"]), namespace=NAMESPACE)
            if stored["sender_id"] != viewer_id and not await self.online(viewer_id):
                await self._notifications.notify(viewer_id, "support", "Support replied",
                                                 "Open the app to read the reply.",
                                                 data={"conversation_id": stored["conversation_id"],
                                                       "seq": stored["seq"]})
        except Exception as exc:  # stored all the same: members fetch it with the history
            log.warning("support relay failed: %s", type(exc).__name__)

    async def _member_cached(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        """`member()` with the answer kept per process until an assignment change on any
        process clears it (or MEMBERSHIP_TTL_S passes, as a safety net)."""
        cached = self._members.get(conversation_id)
        if cached is None or cached[0] < time.monotonic():
            doc = await self._conversations.get(conversation_id)
            if doc is None:
                raise errors.NotFound("No such conversation.", code="conversation_not_found")
            if len(self._members) > 100_000:
                self._members.clear()
            cached = (time.monotonic() + MEMBERSHIP_TTL_S, {k: doc[k] for k in ("_id", "viewer_id", "assignee_id")})
            self._members[conversation_id] = cached
        if belongs(principal, cached[1]):
            return cached[1]
        raise errors.NotFound("No such conversation.", code="conversation_not_found")

    async def _on_assignment(self, message: dict[str, Any]) -> None:
        conversation_id = message.get("conversation_id") if isinstance(message, dict) else None
        if isinstance(conversation_id, str):
            self._members.pop(conversation_id, None)

    async def start(self) -> None:
        self._unsubscribe = await self._pubsub.subscribe(ASSIGNMENT_CHANNEL, self._on_assignment)
        self._relaying = asyncio.ensure_future(self._relay())

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            await self._unsubscribe()
        await self._log.stop()
        if self._relaying is not None:
            self._relaying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relaying

    async def read(self, principal: Principal, conversation_id: str, seq: int) -> None:
        await self.member(principal, conversation_id)
        seq = min(seq, await self._conversations.last_seq(conversation_id))
        await self._conversations.mark_read(conversation_id, principal.user_id, seq)
        await self._emitter.emit("support.read", {"conversation_id": conversation_id, "user_id": principal.user_id,
                                                  "seq": seq}, room=conversation_room(conversation_id),
                                 namespace=NAMESPACE)

    async def rate(self, principal: Principal, conversation_id: str, rating: int) -> dict[str, Any]:
        conversation = await self.member(principal, conversation_id)
        if conversation["viewer_id"] != principal.user_id:
            raise errors.NotFound("No such conversation.", code="conversation_not_found")
        if conversation["status"] != "resolved":
            raise errors.Conflict("Rate a conversation once it is resolved.", code="not_resolved")
        updated = await self._conversations.update(conversation_id, {"rating": rating})
        return await self._view(updated or conversation, principal.user_id)

    # --- agents -----------------------------------------------------------------------

    async def claim(self, agent: Principal, conversation_id: str) -> dict[str, Any]:
        await self.member(agent, conversation_id)
        updated = await self._conversations.update(
            conversation_id, {"assignee_id": agent.user_id, "queued": False, "updated_ms": to_ms(now())},
            expect={"assignee_id": None})
        if updated is None:
            raise errors.Conflict("Another agent has this conversation.", code="already_assigned")
        await self._announce_assignment(updated)
        return await self._view(updated, agent.user_id)

    async def release(self, agent: Principal, conversation_id: str) -> dict[str, Any]:
        await self._assigned(agent, conversation_id)
        updated = await self._conversations.update(
            conversation_id, {"assignee_id": None, "queued": True, "updated_ms": to_ms(now())},
            expect={"assignee_id": agent.user_id})
        if updated is None:
            raise errors.Conflict("This conversation is not yours.", code="not_assigned")
        await self._announce_assignment(updated)
        await self.assign_queued(exclude=[agent.user_id])
        return await self._view(updated, agent.user_id)

    async def transfer(self, agent: Principal, conversation_id: str, to: str) -> dict[str, Any]:
        await self._assigned(agent, conversation_id)
        target = await self._users.get(to)
        if target is None or "support_agent" not in target.get("roles", []) or target.get("status") == "suspended":
            raise errors.Unprocessable("Transfer to a support agent.", code="not_an_agent")
        updated = await self._conversations.update(
            conversation_id, {"assignee_id": to, "queued": False, "updated_ms": to_ms(now())},
            expect={"assignee_id": agent.user_id})
        if updated is None:
            raise errors.Conflict("This conversation is not yours.", code="not_assigned")
        await self._announce_assignment(updated)
        return await self._view(updated, agent.user_id)

    async def set_status(self, agent: Principal, conversation_id: str, status: str) -> dict[str, Any]:
        conversation = await self._assigned(agent, conversation_id)
        updated = await self._conversations.update(conversation_id, {"status": status, "updated_ms": to_ms(now())})
        updated = updated or conversation
        await self._emitter.emit("support.status", {"conversation_id": conversation_id, "status": status,
                                                    "by": agent.user_id},
                                 room=conversation_room(conversation_id), namespace=NAMESPACE)
        if status == "resolved":
            await self.assign_queued()
        return await self._view(updated, agent.user_id)

    async def _assigned(self, agent: Principal, conversation_id: str) -> dict[str, Any]:
        conversation = await self.member(agent, conversation_id)
        if conversation["assignee_id"] != agent.user_id:
            raise errors.Conflict("Claim the conversation first.", code="not_assigned")
        return conversation

    async def _announce_assignment(self, doc: dict[str, Any]) -> None:
        self._members.pop(doc["_id"], None)
        await self._pubsub.publish(ASSIGNMENT_CHANNEL, {"conversation_id": doc["_id"]})
        body = {"conversation_id": doc["_id"], "assignee_id": doc["assignee_id"], "queued": doc["queued"]}
        await self._emitter.emit("support.assigned", body, room=conversation_room(doc["_id"]), namespace=NAMESPACE)
        await self._emitter.emit("support.queue", {"conversation": await self._view(doc)}, room=AGENTS_ROOM,
                                 namespace=NAMESPACE)

    # --- presence and automatic assignment --------------------------------------------

    async def agents(self, principal: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        """Support agents with their presence, capacity and open load: for supervisors
        watching the team, and for agents choosing whom to transfer to."""
        if not (principal.can("support.handle") or principal.can("support.supervise")):
            raise errors.Forbidden("Support agents and supervisors only.", code="forbidden")
        page = await self._users.search(None, "support_agent", limit, cursor)
        ids = [u["_id"] for u in page.items if u.get("status") != "suspended"]
        presence = await self._agents.of(ids)
        load = await self._conversations.open_counts(ids)
        at = to_ms(now())
        items = []
        for user_id in ids:
            doc = presence.get(user_id) or {}
            user = next(u for u in page.items if u["_id"] == user_id)
            items.append({"user_id": user_id, "display_name": user.get("display_name") or "",
                          "available": bool(doc.get("available", True)),
                          "capacity": int(doc.get("capacity", DEFAULT_CAPACITY)),
                          "online": int(doc.get("online_until_ms", 0)) > at, "open": load.get(user_id, 0)})
        return {"items": items, "next_cursor": page.next_cursor}

    async def set_presence(self, agent_id: str, *, available: bool | None = None, capacity: int | None = None,
                           online: bool | None = None) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if available is not None:
            changes["available"] = available
        if capacity is not None:
            changes["capacity"] = capacity
        if online is not None:
            changes["online_until_ms"] = to_ms(now()) + int(ONLINE_TTL_S * 1000) if online else 0
        doc = await self._agents.set(agent_id, changes, DEFAULT_CAPACITY)
        if doc["available"] and doc["online_until_ms"] > to_ms(now()):
            await self.assign_queued()
        return {"available": doc["available"], "capacity": doc["capacity"]}

    async def seen(self, viewers: list[str], agents: list[str]) -> None:
        """Refresh the presence of the users this process holds sockets for."""
        for user_id in viewers:
            await self._ephemeral.set(f"support-online:{user_id}", "1", ONLINE_TTL_S)
        await self._agents.seen(agents, to_ms(now()) + int(ONLINE_TTL_S * 1000))

    async def gone(self, user_id: str, agent: bool) -> None:
        await self._ephemeral.delete(f"support-online:{user_id}")
        if agent:
            await self._agents.set(user_id, {"online_until_ms": 0}, DEFAULT_CAPACITY)

    async def online(self, user_id: str) -> bool:
        return await self._ephemeral.get(f"support-online:{user_id}") is not None

    async def assign_queued(self, exclude: Iterable[str] = ()) -> None:
        """Give waiting conversations, oldest first, to available agents with spare
        capacity, the least loaded first. One process assigns at a time."""
        lock = "support-assign"
        async with self._assigning:
            if not await self._ephemeral.set(lock, "1", 5, only_new=True):
                return
            try:
                agents = await self._free_agents(set(exclude))
                for conversation in await self._conversations.queue(limit=100):
                    if not agents:
                        break
                    load, agent_id, capacity = min(agents)
                    updated = await self._conversations.update(
                        conversation["_id"], {"assignee_id": agent_id, "queued": False, "updated_ms": to_ms(now())},
                        expect={"assignee_id": None})
                    if updated is not None:
                        await self._announce_assignment(updated)
                    agents.remove((load, agent_id, capacity))
                    if load + 1 < capacity:
                        agents.append((load + 1, agent_id, capacity))
            finally:
                with contextlib.suppress(Exception):
                    await self._ephemeral.delete(lock)

    async def _free_agents(self, exclude: set[str]) -> list[tuple[int, str, int]]:
        free = []
        for agent in await self._agents.available(to_ms(now())):
            if agent["_id"] in exclude:
                continue
            load = await self._conversations.open_count(agent["_id"])
            if load < int(agent["capacity"]):
                free.append((load, agent["_id"], int(agent["capacity"])))
        return free


def belongs(principal: Principal, doc: dict[str, Any]) -> bool:
    """The one membership rule: the conversation's viewer, the agent it is assigned to, or,
    while it waits unassigned, any agent (to claim it)."""
    return doc["viewer_id"] == principal.user_id or (
        principal.can("support.handle") and doc["assignee_id"] in (principal.user_id, None))


def view(doc: dict[str, Any], user_id: str | None, last: int) -> dict[str, Any]:
    read = doc.get("read") or {}
    return {
        "id": doc["_id"], "viewer_id": doc["viewer_id"], "subject": doc["subject"], "status": doc["status"],
        "assignee_id": doc["assignee_id"], "queued": bool(doc["queued"]), "last_seq": last,
        "wrapped_keys": doc["wrapped_keys"], "team_key_id": doc["team_key_id"], "read": read,
        "unread": max(0, last - int(read.get(user_id, 0))) if user_id else None, "rating": doc.get("rating"),
        "created_ms": doc["created_ms"], "updated_ms": doc["updated_ms"],
    }


def message_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"conversation_id": doc["conversation_id"], "message_id": doc["_id"], "seq": doc["seq"],
            "sender_id": doc["sender_id"], "nonce": doc["nonce"], "ciphertext": doc["ciphertext"],
            "created_ms": doc["created_ms"]}
