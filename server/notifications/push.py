"""Push through Firebase Cloud Messaging with firebase-admin (HTTP v1, one request per
device, sent concurrently by `send_each_async`).

Retries are the outbox's, durable and with jitter, so the library's own transport retries
are turned off. The outcome of each device is one of: sent (FCM's message name), gone (the
token is unregistered or invalid: forget the device), retry (429, 5xx, or the request never
reached FCM), unknown (the request may have reached FCM but no answer came: it is not sent
again, see docs/notifications.md), failed (FCM rejected the message itself).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from firebase_admin import (
    App,
    _http_client,  # the async client's retry setting has no public knob
    credentials,
    exceptions,
    initialize_app,
    messaging,
)
from google.auth.transport.requests import Request

log = logging.getLogger("nameless.push")

Outcome = Literal["sent", "gone", "retry", "unknown", "failed"]
MAX_PER_CALL = 500  # send_each_async's limit
_NEVER_REACHED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class PushMessage:
    token: str
    platform: str  # android | ios | web
    title: str
    body: str
    collapse_id: str  # the delivery id: a device shows one notification per id
    data: dict[str, str] = field(default_factory=dict)
    badge: int | None = None
    link: str | None = None


@dataclass(frozen=True)
class PushResult:
    outcome: Outcome
    message_id: str | None = None
    error: str | None = None


def platform_message(m: PushMessage) -> messaging.Message:
    """Title and body everywhere; Android gets its channel, tag and click link, iOS the
    badge, sound and collapse id, the web its link; deep-link data rides along as strings."""
    data = {**m.data, **({"link": m.link} if m.link else {})}
    android = apns = webpush = None
    if m.platform == "android":
        android = messaging.AndroidConfig(
            priority="high", collapse_key=m.collapse_id[:64],
            notification=messaging.AndroidNotification(tag=m.collapse_id, channel_id="nameless",
                                                       click_action="OPEN_LINK",
                                                       notification_count=m.badge))
    elif m.platform == "ios":
        apns = messaging.APNSConfig(
            headers={"apns-collapse-id": m.collapse_id[:64], "apns-priority": "10"},
            payload=messaging.APNSPayload(aps=messaging.Aps(badge=m.badge, sound="default", thread_id="nameless")))
    else:
        webpush = messaging.WebpushConfig(
            fcm_options=messaging.WebpushFCMOptions(link=m.link) if m.link and m.link.startswith("https://")
            else None,
            notification=messaging.WebpushNotification(tag=m.collapse_id))
    with warnings.catch_warnings():  # 7.x prefers installation ids; apps register FCM tokens with us
        warnings.simplefilter("ignore", DeprecationWarning)
        return messaging.Message(token=m.token, notification=messaging.Notification(title=m.title, body=m.body),
                                 data=data, android=android, apns=apns, webpush=webpush)


class FirebasePush:
    """One firebase-admin app per process, built from a service account key file."""

    def __init__(self, credentials_file: str, *, endpoint: str = "", timeout_s: float = 10.0) -> None:
        info = json.loads(Path(credentials_file).read_text())
        cred = credentials.Certificate(info)
        self.project_id = info["project_id"]
        self._app: App = initialize_app(cred, {"httpTimeout": timeout_s}, name=f"nameless-push-{uuid.uuid4().hex}")
        self._service = messaging._get_messaging_service(self._app)
        self._credential = self._service._credential
        # The outbox retries (durably, with jitter); the library must not retry behind it.
        self._service._async_client = _http_client.HttpxAsyncClient(
            credential=self._credential, timeout=timeout_s,
            retry_config=_http_client.HttpxRetry(max_retries=0))
        if endpoint:
            base = endpoint.rstrip("/")
            self._service._fcm_url = f"{base}/v1/projects/{self.project_id}/messages:send"
            self._service._fcm_topic_url = f"{base}/v1/projects/{self.project_id}/registrations"
        self._refresh = asyncio.Lock()

    async def _ensure_token(self) -> None:
        """google-auth refreshes the OAuth token with a blocking call: do it off the loop."""
        async with self._refresh:
            if not self._credential.valid:
                await asyncio.to_thread(self._credential.refresh, Request())

    async def send(self, batch: list[PushMessage]) -> list[PushResult]:
        results: list[PushResult] = []
        try:
            await self._ensure_token()
        except Exception as exc:  # the token endpoint is down: nothing was sent
            log.warning("fcm token refresh failed", extra={"error": type(exc).__name__})
            return [PushResult("retry", error=f"auth: {type(exc).__name__}") for _ in batch]
        for start in range(0, len(batch), MAX_PER_CALL):
            chunk = batch[start:start + MAX_PER_CALL]
            reply = await messaging.send_each_async([platform_message(m) for m in chunk], app=self._app)
            results.extend(_result(r) for r in reply.responses)
        return results

    async def subscribe(self, tokens: list[str], topic: str, subscribed: bool) -> None:
        await self._ensure_token()
        call = messaging.subscribe_to_topic_async if subscribed else messaging.unsubscribe_from_topic_async
        reply = await call(tokens, topic, app=self._app)
        if reply.failure_count:
            raise RuntimeError(f"{reply.failure_count} of {len(tokens)} topic changes failed")

    async def send_topic(self, topic: str, title: str, body: str, data: dict[str, str], collapse_id: str) -> str:
        await self._ensure_token()
        message = messaging.Message(topic=topic, notification=messaging.Notification(title=title, body=body),
                                    data=data, android=messaging.AndroidConfig(collapse_key=collapse_id[:64]),
                                    apns=messaging.APNSConfig(headers={"apns-collapse-id": collapse_id[:64]}))
        reply = await messaging.send_each_async([message], app=self._app)
        result = _result(reply.responses[0])
        if result.outcome != "sent":
            raise RuntimeError(f"topic send {result.outcome}: {result.error}")
        return result.message_id or ""

    async def close(self) -> None:
        await self._service._async_client.aclose()


def _result(response: messaging.SendResponse) -> PushResult:
    if response.success:
        return PushResult("sent", message_id=response.message_id)
    exc: Any = response.exception
    name = type(exc).__name__
    if isinstance(exc, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return PushResult("gone", error=name)
    if isinstance(exc, exceptions.InvalidArgumentError):
        if "registration token" in str(exc).lower():
            return PushResult("gone", error=name)
        return PushResult("failed", error=name)
    if isinstance(exc, exceptions.DeadlineExceededError):
        cause = getattr(exc, "cause", None)
        return PushResult("retry" if isinstance(cause, _NEVER_REACHED) else "unknown", error=name)
    if isinstance(exc, exceptions.UnknownError):  # a transport error: retry only if nothing left here
        return PushResult("retry" if isinstance(getattr(exc, "cause", None), _NEVER_REACHED) else "unknown",
                          error=name)
    if isinstance(exc, messaging.QuotaExceededError | exceptions.ResourceExhaustedError
                  | exceptions.UnavailableError | exceptions.InternalError):
        return PushResult("retry", error=name)
    if isinstance(exc, messaging.ThirdPartyAuthError | exceptions.UnauthenticatedError
                  | exceptions.PermissionDeniedError):
        return PushResult("retry", error=name)  # our credentials or APNs keys: an operator fixes them
    return PushResult("failed", error=name)
