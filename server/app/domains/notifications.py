"""Notifications: the inbox with live delivery on namespace `/`, preferences, devices, and
the outbox of what leaves the server (staff can read it)."""

from __future__ import annotations

from handlers.notifications import inbox
from handlers.notifications import outbox as outbox_handlers
from handlers.routing import API
from realtime.notifications import UserChannel
from server.app.wiring import Contribution, Wiring
from server.notifications.inbox import NotificationService
from server.notifications.outbox import Outbox
from server.staff.audit import AuditLog
from storage.identity.sessions import SessionRepository
from storage.identity.users import UserRepository
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
    notifications = NotificationService(ctx.repo(NotificationRepository), ctx.repo(UserRepository), mail, gateway,
                                        ctx.repo(SessionRepository), AuditLog(ctx.repo(AuditRepository)))
    return Contribution(
        services={"notifications": notifications, "outbox": mail},
        routes={API: [*inbox.routes(notifications), *outbox_handlers.routes(mail)]},
        namespaces=[UserChannel(gateway, notifications)],
        start=[mail.forget_stored_links],
    )
