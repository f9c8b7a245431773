"""Sending what the outbox holds: claim a batch under a lease, send each delivery through its
channel (FCM for push, Mailchimp for email), record every outcome in one write.

A failed attempt is retried with exponential backoff and jitter up to the attempt limit,
then marked dead for staff. A delivery whose worker died while it was `sending` may have
left already: a push is then marked `unconfirmed` and not sent again (FCM has no idempotency
key); an email is looked up among the member's Mailchimp events by its delivery id and sent
only if it is not there. Without a provider's settings its deliveries are `skipped` with
the reason, and the inbox still has every notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import Any

from server.billing.entitlements import ENTITLED_STATUSES
from server.core.clock import now, to_ms
from server.notifications.email import MailchimpEmail
from server.notifications.inbox import MARKETING_KINDS, TOPIC_KINDS, preference_matrix
from server.notifications.outbox import Outbox
from server.notifications.push import FirebasePush, PushMessage
from storage.billing.plans import PlanRepository
from storage.identity.users import UserRepository
from storage.notifications.inbox import NotificationRepository
from storage.notifications.outbox import OutboxRepository
from storage.state.ratelimit import RateLimiter

log = logging.getLogger("nameless.delivery")

URGENT_KINDS = frozenset({"account", "billing", "verify_email", "reset_password", "support"})
MAX_DELAY_S = 3600.0


@dataclass(frozen=True)
class DeliveryPolicy:
    batch: int = 500
    max_attempts: int = 8
    retry_base_s: float = 5.0
    lease_ms: int = 60_000
    push_per_hour: int = 10


def backoff_ms(attempts: int, base_s: float) -> int:
    """Exponential in the attempts made, capped at an hour, with equal jitter so that a
    provider outage does not bring every retry back at the same instant."""
    delay = min(MAX_DELAY_S, base_s * 2 ** max(0, attempts - 1))
    return int(1000 * (delay / 2 + random.uniform(0, delay / 2)))


class DeliveryService:
    def __init__(self, repo: OutboxRepository, outbox: Outbox, notifications: NotificationRepository,
                 users: UserRepository, plans: PlanRepository, limiter: RateLimiter, push: FirebasePush | None,
                 email: MailchimpEmail | None, policy: DeliveryPolicy) -> None:
        self._repo = repo
        self._users = users
        self._plans = plans
        self._outbox = outbox
        self._notifications = notifications
        self._limiter = limiter
        self._push = push
        self._email = email
        self.policy = policy

    async def run_once(self) -> int:
        """Claim one batch and send it; the number of deliveries handled (0: nothing due)."""
        claimed = await self._repo.claim(to_ms(now()), self.policy.lease_ms, self.policy.batch)
        if not claimed:
            return 0
        keeper = asyncio.ensure_future(self._keep_lease(claimed))
        try:
            pushes = [d for d in claimed if d["channel"] == "push"]
            emails = [d for d in claimed if d["channel"] in ("email", "audience")]
            rest = [d for d in claimed if d["channel"] not in ("push", "email", "audience")]
            push_out, email_out, others = await asyncio.gather(
                self._send_pushes(pushes), self._send_emails(emails),
                asyncio.gather(*[self._send_other(d) for d in rest]))
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await self._repo.record([*push_out, *email_out, *others])
        return len(claimed)

    async def _keep_lease(self, claimed: list[dict[str, Any]]) -> None:
        while True:
            await asyncio.sleep(self.policy.lease_ms / 3000)
            await self._repo.extend(claimed, to_ms(now()), self.policy.lease_ms)

    def _retry(self, delivery: dict[str, Any], error: str, **extra: Any) -> dict[str, Any]:
        if delivery["attempts"] >= self.policy.max_attempts:
            return _final("dead", error=error, **extra)
        due = to_ms(now()) + backoff_ms(delivery["attempts"], self.policy.retry_base_s)
        return {"status": "pending", "due_ms": due, "error": error[:300], "lease_until_ms": 0,
                "updated_ms": to_ms(now()), **extra}

    # --- push -------------------------------------------------------------------------

    async def _send_pushes(self, pushes: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        if not pushes:
            return []
        if self._push is None:
            return [(d, _final("skipped", reason="push is not configured (FIREBASE_CREDENTIALS_FILE)"))
                    for d in pushes]
        outcomes: list[tuple[dict[str, Any], dict[str, Any]]] = []
        live: list[dict[str, Any]] = []
        for d in pushes:
            if d.get("recovered"):
                outcomes.append((d, _final("unconfirmed", error="the worker stopped while sending; not sent again")))
            elif d["attempts"] == 1 and d["kind"] not in URGENT_KINDS and not await self._within_rate(d["user_id"]):
                outcomes.append((d, _final("skipped", reason="rate_limited")))
            else:
                live.append(d)
        users = list({d["user_id"] for d in live})
        devices = await self._notifications.devices_of(users)
        badges = await self._notifications.unread_counts(users)
        messages: list[PushMessage] = []
        owners: list[dict[str, Any]] = []
        for d in live:
            done = set(d.get("done_tokens") or [])
            targets = [dev for dev in devices.get(d["user_id"], []) if dev["_id"] not in done]
            if not targets:
                outcomes.append((d, _final("sent") if done else _final("skipped", reason="no_devices")))
                continue
            data = {k: str(v) for k, v in (d.get("data") or {}).items()}
            data.update(kind=d["kind"], notification_id=str(d.get("notification_id") or d["_id"]))
            for dev in targets:
                messages.append(PushMessage(token=dev["_id"], platform=dev.get("platform", "android"),
                                            title=d["subject"], body=d["text"], collapse_id=d["_id"], data=data,
                                            badge=badges.get(d["user_id"], 0), link=d.get("data", {}).get("link")))
                owners.append(d)
        try:
            results = await self._push.send(messages) if messages else []
        except Exception as exc:  # a bug or a library failure before any request: try again later
            log.exception("push batch failed")
            results = []
            failed = {id(d) for d in owners}
            return outcomes + [(d, self._retry(d, f"{type(exc).__name__}")) for d in live if id(d) in failed]
        per: dict[str, dict[str, list[str]]] = {}
        gone: list[str] = []
        for message, owner, result in zip(messages, owners, results, strict=True):
            per.setdefault(owner["_id"], {}).setdefault(result.outcome, []).append(message.token)
            if result.outcome == "gone":
                gone.append(message.token)
            elif result.outcome in ("retry", "unknown", "failed"):
                log.info("push not sent", extra={"delivery": owner["_id"], "outcome": result.outcome,
                                                  "error": result.error})
        if gone:
            await self._notifications.forget_devices(gone)
        for d in live:
            if d["_id"] not in per:
                continue
            got = per[d["_id"]]
            unsure = got.get("unknown", [])
            done = [*(d.get("done_tokens") or []), *got.get("sent", []), *unsure]
            if got.get("retry"):
                outcomes.append((d, self._retry(d, "FCM unavailable for some devices", done_tokens=done,
                                                unconfirmed_tokens=[*(d.get("unconfirmed_tokens") or []), *unsure])))
            elif got.get("unknown"):
                outcomes.append((d, _final("unconfirmed", error="FCM did not answer in time; not sent again",
                                           done_tokens=done, unconfirmed_tokens=unsure)))
            elif got.get("sent") or d.get("done_tokens"):
                outcomes.append((d, _final("sent", done_tokens=done)))
            elif got.get("failed"):
                outcomes.append((d, _final("dead", error="FCM rejected the message", done_tokens=done)))
            else:
                outcomes.append((d, _final("skipped", reason="no_devices", done_tokens=done)))
        return outcomes

    async def _send_other(self, d: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Topic subscriptions, topic broadcasts and campaigns. A broadcast is not retried
        on its own: it may have gone out; staff retry it if it did not."""
        channel = d["channel"]
        provider = self._email if channel == "campaign" else self._push
        if channel not in ("topics", "topic", "campaign"):
            return d, _final("dead", error=f"unknown channel {channel!r}")
        if provider is None:
            setting = "MAILCHIMP_API_KEY" if channel == "campaign" else "FIREBASE_CREDENTIALS_FILE"
            return d, _final("skipped", reason=f"not configured ({setting})")
        if d.get("recovered") and channel != "topics":
            return d, _final("unconfirmed", error="the worker stopped while sending; not sent again")
        try:
            if channel == "topics":
                await self._sync_topics(d["user_id"])
                return d, _final("sent")
            if channel == "topic":
                assert self._push is not None
                message_id = await self._push.send_topic(d["to"], d["subject"], d["text"], {"kind": d["kind"]},
                                                         d["_id"])
                return d, _final("sent", provider_id=message_id)
            assert self._email is not None
            campaign_id = await self._email.campaign(d["to"], d["subject"], d["text"])
            return d, _final("sent", provider_id=campaign_id)
        except Exception as exc:
            log.warning("delivery failed", extra={"delivery": d["_id"], "channel": channel,
                                                  "error": type(exc).__name__})
            if channel == "topics":  # idempotent: safe to repeat
                return d, self._retry(d, type(exc).__name__)
            return d, _final("dead", error=f"{type(exc).__name__}: the broadcast may not have gone out")

    async def _sync_topics(self, user_id: str) -> None:
        assert self._push is not None
        tokens = [dev["_id"] for dev in (await self._notifications.devices_of([user_id])).get(user_id, [])]
        if not tokens:
            return
        matrix = preference_matrix(await self._notifications.preferences(user_id))
        for kind in TOPIC_KINDS:
            await self._push.subscribe(tokens, kind, matrix[kind]["push"])

    async def _within_rate(self, user_id: str) -> bool:
        decision = await self._limiter.hit(f"push:{user_id}", self.policy.push_per_hour, 3600)
        return bool(decision.allowed)

    # --- email ------------------------------------------------------------------------

    async def _send_emails(self, emails: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        if not emails:
            return []
        if self._email is None:
            return [(d, _final("skipped", reason="email is not configured (MAILCHIMP_API_KEY)")) for d in emails]
        return list(await asyncio.gather(*[self._send_email(d) for d in emails]))

    async def _send_email(self, d: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        assert self._email is not None
        if d["channel"] == "audience":
            return d, await self._sync_member(d)
        if d.get("recovered") or d.get("verify"):
            seen = await self._email.was_sent(d["_id"], d["to"], d["kind"])
            if seen is None:
                return d, self._retry(d, "Mailchimp unavailable to confirm an earlier attempt", verify=True)
            if seen:
                return d, _final("sent")
        rendered = await self._outbox.render(d)
        if rendered is None:
            return d, _final("cancelled", reason="no longer worth sending")
        result = await self._email.send(d["_id"], rendered.to, rendered.kind, rendered.subject, rendered.text,
                                        rendered.link)
        if result.outcome == "sent":
            return d, _final("sent", verify=False)
        if result.outcome == "retry":
            return d, self._retry(d, result.error or "Mailchimp unavailable")
        if result.outcome == "unknown":  # it may have landed: look before sending again
            return d, self._retry(d, result.error or "Mailchimp did not answer", verify=True)
        if result.outcome == "unsubscribed":
            return d, _final("skipped", reason="unsubscribed at Mailchimp")
        return d, _final("dead", error=result.error or "Mailchimp rejected the email")


    async def _sync_member(self, d: dict[str, Any]) -> dict[str, Any]:
        """The member as the account is now (a later change queues another record)."""
        assert self._email is not None
        user = await self._users.get(d["user_id"])
        if user is None or user.get("email") != d["to"]:
            return _final("cancelled", reason="the account or its address changed")
        matrix = preference_matrix(await self._notifications.preferences(d["user_id"]))
        tags = {f"email:{kind}": matrix[kind]["email"] for kind in MARKETING_KINDS}
        verified = bool(user.get("email_verified"))
        tags["verified"] = verified
        subscription = await self._plans.subscription(d["user_id"])
        if subscription is not None and subscription.get("plan_id"):
            tags[f"plan:{subscription['plan_id']}"] = subscription.get("status") in ENTITLED_STATUSES
        marketing = verified and any(matrix[kind]["email"] for kind in MARKETING_KINDS)
        result = await self._email.upsert_member(d["to"], marketing=marketing, tags=tags)
        if result.outcome == "sent":
            return _final("sent")
        if result.outcome in ("retry", "unknown"):  # setting a member twice is harmless
            return self._retry(d, result.error or "Mailchimp unavailable")
        return _final("dead", error=result.error or "Mailchimp rejected the member")


def _final(status: str, *, error: str | None = None, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    changes: dict[str, Any] = {"status": status, "updated_ms": to_ms(now()), "lease_until_ms": 0, **extra}
    if status in ("sent", "unconfirmed"):
        changes["sent_ms"] = to_ms(now())
    if error is not None:
        changes["error"] = error[:300]
    if reason is not None:
        changes["reason"] = reason
    return changes
