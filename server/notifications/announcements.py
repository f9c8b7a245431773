"""Staff announcements: the product's widest fan-out.

An admin sends one to everybody or to the accounts on one plan. It is stored first, then
emitted live: to everybody through one room every viewer socket joins, to a plan's
accounts by each process for the viewers it holds (one query per process). The audit
record is written after the emit, which every viewer waits for, and before the answer.
An announcement stays until it expires, so an app that connects later is sent the active
ones once on connect and can list them (`GET /announcements`). Each process keeps the
active list in memory for a few seconds and drops it when any process announces a new one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from pydantic import AwareDatetime, Field, StringConstraints

from server.billing.entitlements import entitles
from server.core import errors
from server.core.clock import iso, now, to_ms
from server.core.fields import Body, Text
from server.core.permissions import Principal
from server.staff.audit import AuditLog
from storage.billing.plans import PlanRepository
from storage.notifications.announcements import AnnouncementRepository
from storage.state.pubsub import PubSub

ANNOUNCEMENTS_CHANNEL = "announcements.sent"  # {"id", "audience"}
ANNOUNCEMENTS_ROOM = "announcements"  # every viewer socket on namespace `/`
NEVER_MS = 253_402_300_799_000  # stored as the expiry of an announcement without one
ACTIVE_LIMIT = 20
CACHE_TTL_S = 5.0
PLAN_PREFIX = "plan:"


class AnnouncementBody(Body):
    title: Text
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    audience: Annotated[str, StringConstraints(pattern=r"^(all|plan:[a-z0-9_-]{1,40})$")] = Field(
        description="`all`, or `plan:<plan id>`")
    expires_at: Annotated[AwareDatetime, Field(strict=False)] | None = None


class RoomEmitter(Protocol):
    async def emit(self, event: str, data: Any, *, room: str, namespace: str = "/") -> None: ...


def announcement_view(doc: dict[str, Any]) -> dict[str, Any]:
    expires = None if doc["expires_ms"] >= NEVER_MS else doc["expires_ms"]
    return {"id": doc["_id"], "title": doc["title"], "body": doc["body"], "created_at": iso(doc["created_ms"]),
            "expires_at": iso(expires)}


def announcement_event(doc: dict[str, Any]) -> dict[str, Any]:
    """What the `announcement` socket event carries."""
    return {"id": doc["_id"], "title": doc["title"], "body": doc["body"], "created_ms": doc["created_ms"],
            "expires_ms": None if doc["expires_ms"] >= NEVER_MS else doc["expires_ms"]}


class AnnouncementService:
    def __init__(self, repo: AnnouncementRepository, plans: PlanRepository, live: RoomEmitter, audit: AuditLog,
                 pubsub: PubSub, clock: Callable[[], float] = time.monotonic) -> None:
        self._repo = repo
        self._plans = plans
        self._live = live
        self._audit = audit
        self._pubsub = pubsub
        self._clock = clock
        self._cached: tuple[float, list[dict[str, Any]]] | None = None

    async def subscribe(self, handler: Callable[[dict[str, Any]], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Called on every process for every announcement sent (after its cache is dropped)."""

        async def on_sent(message: dict[str, Any]) -> None:
            self._cached = None
            await handler(message)

        return await self._pubsub.subscribe(ANNOUNCEMENTS_CHANNEL, on_sent)

    async def send(self, actor: Principal, body: AnnouncementBody, ip: str) -> dict[str, Any]:
        at = now()
        expires_ms = to_ms(body.expires_at) if body.expires_at is not None else NEVER_MS
        if expires_ms <= to_ms(at):
            raise errors.ValidationFailed(details={"fields": {"expires_at": "must be in the future"}})
        if body.audience.startswith(PLAN_PREFIX) and await self._plans.get(body.audience[len(PLAN_PREFIX):]) is None:
            raise errors.Unprocessable("No such plan.", code="plan_not_found")
        doc = await self._repo.insert({"title": body.title, "body": body.body, "audience": body.audience,
                                       "created_ms": to_ms(at), "expires_ms": expires_ms, "by": actor.user_id})
        self._cached = None
        try:
            await self._pubsub.publish(ANNOUNCEMENTS_CHANNEL, {"id": doc["_id"], "audience": body.audience,
                                                               "event": announcement_event(doc)})
            if body.audience == "all":
                await self._live.emit("announcement", announcement_event(doc), room=ANNOUNCEMENTS_ROOM)
        finally:
            # a failed emit is recorded too
            await self._audit.record(actor, "announcement.send", target_type="announcement",
                                     target_id=doc["_id"], ip=ip,
                                     details={"audience": body.audience, "title": body.title})
        return {**announcement_view(doc), "audience": body.audience}

    async def _active(self) -> list[dict[str, Any]]:
        at = self._clock()
        if self._cached is None or self._cached[0] <= at:
            self._cached = (at + CACHE_TTL_S, await self._repo.active(to_ms(now()), ACTIVE_LIMIT))
        now_ms = to_ms(now())
        return [doc for doc in self._cached[1] if doc["expires_ms"] > now_ms]

    async def active_for(self, user_id: str) -> list[dict[str, Any]]:
        """The active announcements this account is in the audience of, newest first. The
        account's plan is read only when a plan's announcement is active."""
        docs = await self._active()
        plan = None
        if any(doc["audience"] != "all" for doc in docs):
            plan = (await self.plans_of([user_id])).get(user_id)
        return [doc for doc in docs if doc["audience"] == "all" or doc["audience"] == f"{PLAN_PREFIX}{plan}"]

    async def list_for(self, user_id: str) -> dict[str, Any]:
        return {"items": [announcement_view(doc) for doc in await self.active_for(user_id)]}

    async def plans_of(self, user_ids: list[str]) -> dict[str, str]:
        """The plan each account is entitled to now, for those that have one."""
        at_ms = to_ms(now())
        return {sub["_id"]: sub["plan_id"] for sub in await self._plans.subscriptions(user_ids)
                if entitles(sub, at_ms)}

    async def audience_of(self, audience: str, user_ids: list[str]) -> list[str]:
        """Which of these accounts a plan's announcement is for."""
        if audience == "all":
            return user_ids
        wanted = audience[len(PLAN_PREFIX):]
        return [user for user, plan in (await self.plans_of(user_ids)).items() if plan == wanted]


