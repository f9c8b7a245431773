"""The in-app inbox, notification preferences and push device registration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from handlers.base import endpoint
from handlers.notifications.models import Inbox, MarkedRead, Preferences
from handlers.routing import ApiHandler
from server.core.fields import Body, PageQuery
from server.notifications.inbox import NotificationService, ReadBody
from server.notifications.quiet_hours import QuietHours

TAGS = ("notifications",)
ChannelPrefs = dict[Literal["push", "email", "in_app"], bool]


class InboxQuery(PageQuery):
    unread: bool = False


class PreferencesPatch(Body):
    new_episode: ChannelPrefs | None = None
    release: ChannelPrefs | None = None
    billing: ChannelPrefs | None = None
    promotions: ChannelPrefs | None = None
    account: ChannelPrefs | None = None
    support: ChannelPrefs | None = None
    quiet_hours: QuietHours | None = Field(default=None, description="send null to turn quiet hours off")


class DeviceBody(Body):
    platform: Literal["android", "ios", "web"]


class NotificationsHandler(ApiHandler):
    def initialize(self, notifications: NotificationService) -> None:
        self.notifications = notifications


class InboxHandler(NotificationsHandler):
    @endpoint("My notifications, newest first", query=InboxQuery, response=Inbox, auth=True, tags=TAGS)
    async def get(self) -> None:
        query = self.parse_query(InboxQuery)
        self.reply(await self.notifications.inbox(self.user.user_id, query.unread, query.limit, query.cursor))


class ReadHandler(NotificationsHandler):
    @endpoint("Mark notifications read: some ids, or all", body=ReadBody, response=MarkedRead, auth=True, tags=TAGS)
    async def post(self) -> None:
        body = self.parse(ReadBody)
        updated = await self.notifications.mark_read(self.user.user_id, None if body.all else body.ids)
        self.reply({"updated": updated})


class PreferencesHandler(NotificationsHandler):
    @endpoint("My notification preferences per kind and channel", response=Preferences, auth=True, tags=TAGS)
    async def get(self) -> None:
        self.reply(await self.notifications.settings(self.user.user_id))

    @endpoint("Change notification preferences", body=PreferencesPatch, response=Preferences, auth=True, tags=TAGS)
    async def patch(self) -> None:
        body = self.parse(PreferencesPatch)
        changes = {k: v for k, v in body.model_dump(exclude_none=True).items() if k != "quiet_hours"}
        if changes:
            await self.notifications.update_preferences(self.user.user_id, changes)
        if "quiet_hours" in body.model_fields_set:
            await self.notifications.set_quiet_hours(self.user.user_id, body.quiet_hours)
        self.reply(await self.notifications.settings(self.user.user_id))


class DeviceHandler(NotificationsHandler):
    @endpoint("Register this device for push (409 while another signed-in account holds the token)",
              body=DeviceBody, status=204, auth=True, tags=TAGS, errors=(409,))
    async def put(self, push_token: str) -> None:
        body = self.parse(DeviceBody)
        await self.notifications.register_device(self.user, push_token, body.platform, self.client_ip)
        self.no_content()

    @endpoint("Stop push to this device", status=204, auth=True, tags=TAGS, errors=(404,))
    async def delete(self, push_token: str) -> None:
        await self.notifications.remove_device(self.user.user_id, push_token)
        self.no_content()


def routes(notifications: NotificationService) -> list:
    deps = {"notifications": notifications}
    return [
        (r"/me/notifications", InboxHandler, deps),
        (r"/me/notifications/read", ReadHandler, deps),
        (r"/me/notification-preferences", PreferencesHandler, deps),
        # FCM tokens hold a colon, which client libraries often send percent-encoded
        (r"/me/devices/(?P<push_token>(?:[A-Za-z0-9:_.-]|%3[Aa]){8,4096})", DeviceHandler, deps),
    ]
