"""Mailchimp's audience webhook: an unsubscribe (or a cleaned address) there stops the
marketing email here. Mailchimp signs nothing, so the webhook's URL carries a secret;
Mailchimp checks the URL with a GET before it posts."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from handlers.base import endpoint
from handlers.notifications.models import WebhookAccepted
from handlers.routing import WebhookHandler
from server.core import errors
from server.notifications.inbox import NotificationService

TAGS = ("notifications",)


class MailchimpWebhookHandler(WebhookHandler):
    def initialize(self, notifications: NotificationService, secret: str) -> None:
        self.notifications = notifications
        self.secret = secret

    def _check(self, secret: str) -> None:
        if not hmac.compare_digest(secret.encode(), self.secret.encode()):
            raise errors.NotFound("There is nothing at this address.", code="route_not_found")

    @endpoint("Mailchimp checks the webhook address", response=WebhookAccepted, tags=TAGS, errors=(404,))
    async def get(self, secret: str) -> None:
        self._check(secret)
        self.reply({"received": True})

    @endpoint("Mailchimp audience events (unsubscribe, cleaned)", response=WebhookAccepted, tags=TAGS,
              errors=(404,), body_types=("application/x-www-form-urlencoded",))
    async def post(self, secret: str) -> None:
        self._check(secret)
        form = parse_qs(self.body_bytes.decode("utf-8", "replace"), max_num_fields=100)
        kind = (form.get("type") or [""])[0]
        email = (form.get("data[email]") or [""])[0]
        if kind in ("unsubscribe", "cleaned") and email:
            await self.notifications.email_unsubscribed_address(email)
        self.reply({"received": True})


def routes(notifications: NotificationService, secret: str | None) -> list:
    if not secret:
        return []
    return [(r"/mailchimp/(?P<secret>[A-Za-z0-9_-]{16,128})", MailchimpWebhookHandler,
             {"notifications": notifications, "secret": secret})]
