"""Catalog: browse and search, titles and episodes, home rows, history and watchlist,
reviews, recommendations, content management, scheduled releases and the roll-ups."""

from __future__ import annotations

from handlers.catalog import admin, history, recommendations, reviews, titles
from handlers.routing import API
from jobs.catalog import publish, rollups
from server.app.wiring import Contribution, Wiring
from server.catalog.admin import ContentAdminService
from server.catalog.browse import CatalogService
from server.catalog.history import HistoryService
from server.catalog.home import HomeService
from server.catalog.read_model import CatalogReadModel
from server.catalog.recommendations import RecommendationService
from server.catalog.releases import ReleaseEvents
from server.catalog.reviews import ReviewService
from server.catalog.rollups import RollupSources, StoreAddress
from server.catalog.viewers import ViewerResolver
from server.core.shared_cache import SharedCache
from storage.catalog.categories import CategoryRepository
from storage.catalog.episodes import EpisodeRepository
from storage.catalog.history import HistoryRepository
from storage.catalog.recommendations import RecommendationRepository
from storage.catalog.reviews import ReviewRepository
from storage.catalog.seasons import SeasonRepository
from storage.catalog.titles import TitleRepository
from storage.catalog.watchlist import WatchlistRepository


def wire(ctx: Wiring) -> Contribution:
    audit = ctx.services.audit
    title_repo, category_repo = ctx.repo(TitleRepository), ctx.repo(CategoryRepository)
    history_repo, watchlist_repo = ctx.repo(HistoryRepository), ctx.repo(WatchlistRepository)
    review_repo, recommendation_repo = ctx.repo(ReviewRepository), ctx.repo(RecommendationRepository)
    releases = ReleaseEvents()
    releases.subscribe(ctx.services.release_notifier)
    viewers = ViewerResolver(ctx.services.profiles)
    settings = ctx.settings
    model = CatalogReadModel(title_repo, ctx.platform.pubsub, poll_s=settings.catalog_poll_s,
                             rebuild_s=settings.catalog_rebuild_s, start_wait_s=settings.catalog_start_wait_s)
    ctx.platform.local_checks["catalog"] = model.state
    catalog = CatalogService(title_repo, ctx.repo(SeasonRepository), ctx.repo(EpisodeRepository), category_repo,
                             model, details_cached=settings.catalog_details_cached)
    history_service = HistoryService(history_repo, watchlist_repo, title_repo, catalog, ctx.platform.pubsub)
    shared_rows = SharedCache()
    recommendation_service = RecommendationService(recommendation_repo, catalog, history_service, shared_rows,
                                                   ctx.platform.pubsub)
    home = HomeService(catalog, history_service, recommendation_service, shared_rows)
    review_service = ReviewService(review_repo, title_repo, catalog, audit)
    content_admin = ContentAdminService(title_repo, ctx.repo(SeasonRepository), ctx.repo(EpisodeRepository),
                                        category_repo, audit, releases.emit, catalog.changed)
    sources = RollupSources(title_repo, history_repo, watchlist_repo, review_repo, category_repo,
                            recommendation_repo, recommendation_service.computed,
                            StoreAddress(ctx.platform.mongo_url, settings.mongo_db, settings.dependency_timeout_ms))
    return Contribution(
        services={"viewers": viewers, "catalog": catalog, "history": history_service, "reviews": review_service,
                  "recommendations": recommendation_service, "home": home, "content_admin": content_admin,
                  "releases": releases, "rollup_sources": sources},
        routes={API: [
            *titles.routes(viewers, catalog, home),
            *history.routes(viewers, history_service),
            *reviews.routes(viewers, review_service),
            *recommendations.routes(viewers, recommendation_service),
            *admin.routes(content_admin),
        ]},
        start=[model.start, history_service.start, recommendation_service.start],
        stop=[model.stop, history_service.stop, recommendation_service.stop],
        jobs=[publish.PublishScheduler(content_admin, releases.emit), *rollups.schedules(sources, ctx.fleet_claim)],
    )
