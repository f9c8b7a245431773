"""Notifications: the inbox with live delivery on namespace `/`, preferences, devices, and
the outbox of what leaves the server (staff can read it)."""

from __future__ import annotations

from handlers.notifications import announcements as announcement_handlers
from handlers.notifications import inbox
from handlers.notifications import outbox as outbox_handlers
from handlers.routing import API
from realtime.notifications import UserChannel
from server.app.wiring import Contribution, Wiring
from server.notifications.announcements import AnnouncementService
from server.notifications.feed import NotificationFeed
from server.notifications.inbox import NotificationService
from server.notifications.outbox import Outbox
from server.staff.audit import AuditLog
from storage.billing.plans import PlanRepository
from storage.identity.sessions import SessionRepository
from storage.identity.users import UserRepository
from storage.notifications.announcements import AnnouncementRepository
from storage.notifications.inbox import NotificationRepository
from storage.notifications.outbox import OutboxRepository
from storage.staff.audit import AuditRepository


def outbox(ctx: Wiring) -> Outbox:
    """The queue of email and push; identity queues account emails into it before this
    domain is wired."""
    return ctx.once("outbox", lambda: Outbox(ctx.repo(OutboxRepository), ctx.settings.public_url))


def wire(ctx: Wiring) -> Contribution:
    gateway = ctx.services.gateway
    mail = outbox(ctx)
    feed = NotificationFeed(ctx.platform.pubsub)
    audit = AuditLog(ctx.repo(AuditRepository))
    notifications = NotificationService(ctx.repo(NotificationRepository), ctx.repo(UserRepository), mail, feed,
                                        ctx.repo(SessionRepository), audit)
    announcements = AnnouncementService(ctx.repo(AnnouncementRepository), ctx.repo(PlanRepository), gateway, audit,
                                        ctx.platform.pubsub)
    channel = UserChannel(gateway, notifications, feed, announcements)
    return Contribution(
        services={"notifications": notifications, "notification_feed": feed, "outbox": mail,
                  "announcements": announcements},
        routes={API: [*inbox.routes(notifications), *outbox_handlers.routes(mail),
                      *announcement_handlers.routes(announcements)]},
        namespaces=[channel],
        start=[mail.forget_stored_links, channel.start],
        stop=[channel.stop],
    )
