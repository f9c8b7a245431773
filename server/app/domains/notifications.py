"""Notifications: the inbox with live delivery on namespace `/`, preferences, devices, the
outbox of what leaves the server (staff can read and retry it), its delivery worker through
FCM and Mailchimp, and the release fan-out job."""

from __future__ import annotations

from config import Settings
from handlers.notifications import announcements as announcement_handlers
from handlers.notifications import broadcasts, inbox, webhooks
from handlers.notifications import outbox as outbox_handlers
from handlers.routing import API, WEBHOOKS
from jobs.notifications import delivery as delivery_jobs
from realtime.notifications import UserChannel
from server.app.domains.platform import job_queue
from server.app.wiring import Contribution, Wiring
from server.notifications.announcements import AnnouncementService
from server.notifications.delivery import DeliveryPolicy, DeliveryService
from server.notifications.email import MailchimpEmail
from server.notifications.feed import NotificationFeed
from server.notifications.inbox import NotificationService
from server.notifications.outbox import Outbox
from server.notifications.push import FirebasePush
from server.notifications.releases import ReleaseNotifier
from server.staff.audit import AuditLog
from storage.billing.plans import PlanRepository
from storage.catalog.history import HistoryRepository
from storage.catalog.watchlist import WatchlistRepository
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


def providers(settings: Settings) -> tuple[FirebasePush | None, MailchimpEmail | None]:
    """FCM and Mailchimp when their settings are present; a channel without them records
    its deliveries as skipped."""
    push = None
    if settings.firebase_credentials_file:
        push = FirebasePush(settings.firebase_credentials_file, endpoint=settings.fcm_endpoint,
                            timeout_s=settings.provider_timeout_s)
    email = None
    if settings.mailchimp_api_key is not None and settings.mailchimp_audience:
        email = MailchimpEmail(settings.mailchimp_api_key.get_secret_value(), settings.mailchimp_server,
                               settings.mailchimp_audience, endpoint=settings.mailchimp_endpoint,
                               timeout_s=settings.provider_timeout_s, threads=settings.delivery_email_threads)
    return push, email


def wire(ctx: Wiring) -> Contribution:
    settings, gateway = ctx.settings, ctx.services.gateway
    mail = outbox(ctx)
    feed = NotificationFeed(ctx.platform.pubsub)
    audit = AuditLog(ctx.repo(AuditRepository))
    repo = ctx.repo(NotificationRepository)
    notifications = NotificationService(repo, ctx.repo(UserRepository), mail, feed,
                                        ctx.repo(SessionRepository), audit)
    announcements = AnnouncementService(ctx.repo(AnnouncementRepository), ctx.repo(PlanRepository), gateway, audit,
                                        ctx.platform.pubsub)
    channel = UserChannel(gateway, notifications, feed, announcements)
    push, email = providers(settings)
    policy = DeliveryPolicy(batch=settings.delivery_batch, max_attempts=settings.delivery_max_attempts,
                            retry_base_s=settings.delivery_retry_base_s,
                            lease_ms=int(settings.delivery_lease_s * 1000), push_per_hour=settings.push_per_hour)
    delivery = DeliveryService(ctx.repo(OutboxRepository), mail, repo, ctx.repo(UserRepository),
                               ctx.repo(PlanRepository), ctx.platform.rate_limiter, push, email, policy)
    queue = job_queue(ctx)
    releases = ReleaseNotifier(ctx.repo(HistoryRepository), ctx.repo(WatchlistRepository), notifications,
                               queue.submit)
    delivery_jobs.register(queue, releases)
    secret = settings.mailchimp_webhook_secret
    stop = [channel.stop, *(p.close for p in (push,) if p is not None)]
    if email is not None:
        async def close_email() -> None:
            email.close()
        stop.append(close_email)
    return Contribution(
        services={"notifications": notifications, "notification_feed": feed, "outbox": mail,
                  "announcements": announcements, "delivery": delivery, "release_notifier": releases},
        routes={API: [*inbox.routes(notifications), *outbox_handlers.routes(mail),
                      *announcement_handlers.routes(announcements), *broadcasts.routes(notifications)],
                WEBHOOKS: webhooks.routes(notifications, secret.get_secret_value() if secret else None)},
        namespaces=[channel],
        jobs=delivery_jobs.schedules(delivery, mail, notifications),
        start=[mail.forget_stored_links, channel.start],
        stop=stop,
    )
