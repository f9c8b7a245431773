"""Building the services around one platform: the only place that knows who needs whom."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.content_jobs import ContentJobs
from jobs.recommendations import RecommendationSources
from jobs.runner import JobRunner
from jobs.transcode import TranscodeJob
from realtime.gateway import Gateway
from realtime.ops import OpsChannel
from realtime.user_channel import UserChannel
from server.accounts import AccountService
from server.audit import AuditLog
from server.catalog import CatalogService
from server.content_admin import ContentAdminService
from server.entitlements import EntitlementService
from server.history import HistoryService
from server.home import HomeService
from server.media.signing import MediaSigner
from server.media.uploads import UploadService
from server.mfa import TotpService
from server.notifications import NotificationService
from server.outbox import Outbox
from server.passwords import PasswordHashing
from server.phone import FirebasePhoneVerifier, PhoneService
from server.platform import Platform
from server.playback import PlaybackService
from server.profiles import ProfileService
from server.recommendations import RecommendationService
from server.release_notifications import ReleaseNotifier
from server.releases import ReleaseEvents
from server.reviews import ReviewService
from server.sessions import SessionService
from server.shared_cache import SharedCache
from server.social import ProviderConfig, ProviderVerifier, SocialService
from server.staff import StaffService
from server.throttle import LoginThrottle
from server.tokens import AccessTokens, derive_key
from server.viewers import ViewerResolver
from storage import (
    audit,
    categories,
    episodes,
    history,
    identities,
    jobs,
    media,
    notifications,
    one_time_tokens,
    outbox,
    plans,
    playback,
    profiles,
    recommendations,
    reviews,
    seasons,
    sessions,
    titles,
    users,
    watchlist,
)
from storage.gcs_store import GcsMediaStore
from storage.media_store import LocalMediaStore, MediaStore

# The catalog's stores (issue 4): titles, seasons, episodes, categories, history, watchlist, reviews, suggestions.
CATALOG_STORES = (titles, seasons, episodes, categories, history, watchlist, reviews, recommendations)
# Plans and entitlements, uploads, jobs, assets and playback sessions (issue 5).
MEDIA_STORES = (plans, jobs, media, playback)


def index_specs() -> dict[str, list[Any]]:
    specs: dict[str, list[Any]] = {}
    for module in (users, sessions, one_time_tokens, identities, profiles, audit, outbox, notifications,
                   *CATALOG_STORES, *MEDIA_STORES):
        for collection, indexes in module.INDEXES.items():
            specs.setdefault(collection, []).extend(indexes)
    return specs


@dataclass
class Services:
    accounts: AccountService
    sessions: SessionService
    social: SocialService
    totp: TotpService
    phone: PhoneService
    profiles: ProfileService
    staff: StaffService
    audit: AuditLog
    audit_repo: audit.AuditRepository
    outbox_repo: outbox.OutboxRepository
    notifications: NotificationService
    gateway: Gateway
    ops: OpsChannel
    viewers: ViewerResolver
    catalog: CatalogService
    history: HistoryService
    reviews: ReviewService
    recommendations: RecommendationService
    home: HomeService
    content_admin: ContentAdminService
    releases: ReleaseEvents
    content_jobs: ContentJobs
    entitlements: EntitlementService
    plans: plans.PlanRepository
    jobs: JobRunner
    job_repo: jobs.JobRepository
    transcode_job: TranscodeJob
    uploads: UploadService
    media_store: MediaStore
    playback: PlaybackService
    workers: int = 1

    async def start(self) -> None:
        """Background work owned by the services: revocation listener, ops snapshots."""
        await self.gateway.start()
        await self.ops.start()
        await self.plans.seed_defaults()
        if self.workers:
            self.jobs.start()
            await self.content_jobs.start()  # scheduled publish, trending, recommendations

    async def stop(self) -> None:
        await self.content_jobs.stop()
        await self.jobs.stop()
        await self.ops.stop()
        await self.gateway.stop()


def media_store_for(settings: Any, data_dir: Path) -> MediaStore:
    """Google Cloud Storage when GCS_BUCKET is set, else local disk under the data dir."""
    if settings.gcs_bucket:
        info = json.loads(Path(settings.gcs_credentials_file).read_text())
        return GcsMediaStore(settings.gcs_bucket, info, endpoint=settings.gcs_endpoint or None)
    return LocalMediaStore(data_dir / "media")


def build_services(platform: Platform, hashing: PasswordHashing | None = None) -> Services:
    settings, db = platform.settings, platform.db
    user_repo = users.UserRepository(db)
    identity_repo = identities.IdentityRepository(db)
    profile_repo = profiles.ProfileRepository(db)
    audit_repo = audit.AuditRepository(db)
    outbox_repo = outbox.OutboxRepository(db)
    keys, active = settings.jwt_keyring(platform.secret_key)
    tokens = AccessTokens(keys, active, dt.timedelta(seconds=settings.access_token_ttl))
    session_service = SessionService(sessions.SessionRepository(db), user_repo, tokens, platform.pubsub)
    totp = TotpService(user_repo, platform.ephemeral, derive_key(platform.secret_key, "totp-secrets"))
    mail = Outbox(outbox_repo, settings.public_url)
    accounts = AccountService(
        user_repo, profile_repo, identity_repo, one_time_tokens.OneTimeTokenRepository(db), session_service,
        hashing or PasswordHashing(), LoginThrottle(platform.ephemeral), totp, mail,
    )
    verifier = ProviderVerifier(ProviderConfig(
        google_client_ids=settings.google_client_ids,
        google_jwks_url=settings.google_jwks_url,
        apple_client_ids=settings.apple_client_ids,
        apple_jwks_url=settings.apple_jwks_url,
        facebook_app_id=settings.facebook_app_id,
        facebook_app_secret=settings.facebook_app_secret.get_secret_value() if settings.facebook_app_secret else "",
        facebook_graph_url=settings.facebook_graph_url,
    ))
    social = SocialService(verifier, identity_repo, user_repo, accounts, session_service, totp)
    audit_log = AuditLog(audit_repo)
    gateway = Gateway(platform, session_service)
    notification_service = NotificationService(notifications.NotificationRepository(db), user_repo, mail, gateway)
    ops = OpsChannel(gateway)
    gateway.register(UserChannel(gateway, notification_service), ops)
    title_repo, season_repo = titles.TitleRepository(db), seasons.SeasonRepository(db)
    episode_repo, category_repo = episodes.EpisodeRepository(db), categories.CategoryRepository(db)
    history_repo, watchlist_repo = history.HistoryRepository(db), watchlist.WatchlistRepository(db)
    review_repo = reviews.ReviewRepository(db)
    releases = ReleaseEvents()
    releases.subscribe(ReleaseNotifier(history_repo, notification_service))
    catalog = CatalogService(title_repo, season_repo, episode_repo, category_repo)
    history_service = HistoryService(history_repo, watchlist_repo, title_repo, catalog)
    recommendation_repo = recommendations.RecommendationRepository(db)
    shared_rows = SharedCache()
    recommendation_service = RecommendationService(recommendation_repo, catalog, history_service, shared_rows)
    content_admin = ContentAdminService(title_repo, season_repo, episode_repo, category_repo, audit_log,
                                        releases.emit)
    data_dir = Path(settings.data_dir)
    plan_repo = plans.PlanRepository(db)
    entitlements = EntitlementService(plan_repo, audit_log)
    media_repo = media.MediaRepository(db)
    media_store = media_store_for(settings, data_dir)
    job_repo = jobs.JobRepository(db)
    job_runner = JobRunner(job_repo, concurrency=max(1, settings.job_workers))
    transcode_job = TranscodeJob(media_repo, media_store, data_dir / "uploads", data_dir / "staging")
    job_runner.register("transcode", transcode_job, transcode_job.gave_up)
    recommendation_sources = RecommendationSources(title_repo, history_repo, watchlist_repo, review_repo,
                                                   category_repo, recommendation_repo)
    return Services(
        accounts=accounts,
        sessions=session_service,
        social=social,
        totp=totp,
        phone=PhoneService(FirebasePhoneVerifier(settings.firebase_project_id, settings.firebase_certs_url), user_repo),
        profiles=ProfileService(profile_repo),
        staff=StaffService(user_repo, identity_repo, accounts, session_service, audit_log, notification_service),
        audit=audit_log,
        audit_repo=audit_repo,
        outbox_repo=outbox_repo,
        notifications=notification_service,
        gateway=gateway,
        ops=ops,
        viewers=ViewerResolver(profile_repo),
        catalog=catalog,
        history=history_service,
        reviews=ReviewService(review_repo, title_repo, catalog, audit_log),
        recommendations=recommendation_service,
        home=HomeService(catalog, history_service, recommendation_service, shared_rows),
        content_admin=content_admin,
        releases=releases,
        content_jobs=ContentJobs(content_admin, releases.emit, recommendation_sources),
        entitlements=entitlements,
        plans=plan_repo,
        jobs=job_runner,
        job_repo=job_repo,
        transcode_job=transcode_job,
        uploads=UploadService(media_repo, data_dir / "uploads", audit_log, job_runner,
                              max_bytes=settings.max_upload_bytes, chunk_bytes=settings.upload_chunk_bytes),
        media_store=media_store,
        playback=PlaybackService(ViewerResolver(profile_repo), catalog, history_service, entitlements, media_repo,
                                 playback.PlaybackRepository(db), MediaSigner(derive_key(platform.secret_key,
                                                                                       "media-urls")),
                                 platform.ephemeral, media_store),
        workers=settings.job_workers,
    )
