"""Email through the Mailchimp Marketing API (mailchimp-marketing, a blocking client): the
audience member is kept in step (status, tags for plan and preferences), and each email is
a member event whose name starts the matching customer journey, with the subject, text and
link as event properties. Broadcasts are campaigns to a tagged segment.

Every call runs in a bounded thread pool with the client's timeout, never on the event
loop. A member event has no idempotency key, but events can be listed: an email whose
worker died mid-send is looked up by its delivery id before it is sent again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import requests
from mailchimp_marketing import Client
from mailchimp_marketing.api_client import ApiClientError

log = logging.getLogger("nameless.email")
T = TypeVar("T")
Outcome = Literal["sent", "retry", "unknown", "failed", "unsubscribed"]


@dataclass(frozen=True)
class EmailResult:
    outcome: Outcome
    error: str | None = None


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address (their scheme, not a secret)."""
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


def event_name(kind: str) -> str:
    return f"nameless_{kind}"[:30]


class MailchimpEmail:
    def __init__(self, api_key: str, server: str, audience: str, *, endpoint: str = "", timeout_s: float = 10.0,
                 threads: int = 8) -> None:
        self.audience = audience
        self._config = {"api_key": api_key, "server": server or api_key.rpartition("-")[2], "timeout": timeout_s}
        self._endpoint = endpoint.rstrip("/")
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mailchimp")
        self._slots = asyncio.Semaphore(threads)

    def _client(self) -> Client:
        client = Client()
        client.set_config(self._config)
        if self._endpoint:
            client.api_client.host = self._endpoint
        return client

    async def _call(self, fn: Callable[[Client], T]) -> T:
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(self._client()))

    async def upsert_member(self, email: str, *, marketing: bool, tags: dict[str, bool]) -> EmailResult:
        """Add or update the member: `subscribed` while a verified address takes marketing
        email, `unsubscribed` once a subscribed one opts out, else `transactional` (account
        and billing email only); tags mirror plan and preferences so campaigns can target
        segments."""
        member = subscriber_hash(email)

        def run(c: Client) -> None:
            try:
                current = c.lists.get_list_member(self.audience, member).get("status")
            except ApiClientError as exc:
                if exc.status_code != 404:
                    raise
                current = None
            body: dict[str, Any] = {"email_address": email,
                                    "status_if_new": "subscribed" if marketing else "transactional"}
            if marketing:
                body["status"] = "subscribed"
            elif current == "subscribed":
                body["status"] = "unsubscribed"
            c.lists.set_list_member(self.audience, member, body)
            if tags:
                c.lists.update_list_member_tags(self.audience, member, {"tags": [
                    {"name": name, "status": "active" if on else "inactive"} for name, on in sorted(tags.items())]})

        try:
            await self._call(run)
        except ApiClientError as exc:
            return _classify(exc)
        return EmailResult("sent")

    async def send(self, delivery_id: str, to: str, kind: str, subject: str, text: str,
                   link: str | None) -> EmailResult:
        properties = {"delivery_id": delivery_id, "subject": subject, "text": text}
        if link:
            properties["link"] = link
        member = subscriber_hash(to)

        def run(c: Client) -> None:
            c.lists.set_list_member(self.audience, member, {"email_address": to, "status_if_new": "transactional"})
            c.lists.create_list_member_event(self.audience, member, {"name": event_name(kind),
                                                                     "properties": properties})

        try:
            await self._call(run)
        except ApiClientError as exc:
            return _classify(exc)
        return EmailResult("sent")

    async def was_sent(self, delivery_id: str, to: str, kind: str) -> bool | None:
        """Whether an event for this delivery is on the member already; None when Mailchimp
        cannot tell us now."""
        def run(c: Client) -> Any:
            return c.lists.get_list_member_events(self.audience, subscriber_hash(to), count=1000)

        try:
            reply = await self._call(run)
        except ApiClientError as exc:
            return False if exc.status_code == 404 else None
        return any(e.get("name") == event_name(kind) and (e.get("properties") or {}).get("delivery_id") == delivery_id
                   for e in reply.get("events", []))

    async def campaign(self, segment_tag: str, subject: str, text: str) -> str:
        """A plain-text campaign to the members carrying `segment_tag`, sent now; its id."""
        def run(c: Client) -> str:
            tags = c.lists.tag_search(self.audience, name=segment_tag)
            tag_id = next((t["id"] for t in tags.get("tags", []) if t["name"] == segment_tag), None)
            recipients: dict[str, Any] = {"list_id": self.audience}
            if tag_id is not None:
                recipients["segment_opts"] = {"saved_segment_id": tag_id}
            created = c.campaigns.create({"type": "plaintext", "recipients": recipients,
                                          "settings": {"subject_line": subject, "title": subject,
                                                       "from_name": "Nameless",
                                                       "reply_to": "noreply@nameless.invalid"}})
            c.campaigns.set_content(created["id"], {"plain_text": text})
            c.campaigns.send(created["id"])
            return str(created["id"])

        return await self._call(run)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _classify(exc: ApiClientError) -> EmailResult:
    status = exc.status_code
    if status is None:  # no HTTP answer: the client wraps the transport error
        cause = exc.text
        if isinstance(cause, requests.exceptions.ConnectionError | requests.exceptions.ConnectTimeout) and \
                not isinstance(cause, requests.exceptions.ReadTimeout):
            return EmailResult("retry", error=type(cause).__name__)
        return EmailResult("unknown", error=type(cause).__name__)
    title = ""
    try:
        body = exc.text if isinstance(exc.text, dict) else json.loads(exc.text)
        title = str(body.get("title", ""))
    except (TypeError, ValueError):
        pass
    if status == 429 or status >= 500:
        return EmailResult("retry", error=f"HTTP {status}")
    if "unsubscribed" in title.lower() or "compliance" in title.lower():
        return EmailResult("unsubscribed", error=title[:80])
    return EmailResult("failed", error=f"HTTP {status} {title[:80]}")
