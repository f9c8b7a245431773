"""The catalog's background jobs in one bundle, so the runtime starts and stops them with
two calls: the scheduled release, the trending roll-up and the recommendations."""

from __future__ import annotations

from jobs import publish_scheduled, trending
from jobs import recommendations as recommendation_job
from jobs.periodic import Periodic
from jobs.publish_scheduled import PublishScheduler
from jobs.recommendations import RecommendationScheduler, RecommendationSources
from server.content_admin import ContentAdminService
from server.releases import ReleaseListener

TRENDING_INTERVAL_S = 5 * 60.0


class ContentJobs:
    def __init__(self, content: ContentAdminService, emit: ReleaseListener, sources: RecommendationSources, *,
                 publish_interval_s: float = publish_scheduled.DEFAULT_INTERVAL_S,
                 trending_interval_s: float = TRENDING_INTERVAL_S,
                 recommendations_interval_s: float = recommendation_job.DEFAULT_INTERVAL_S) -> None:
        self.sources = sources
        self.publish = PublishScheduler(content, emit, publish_interval_s)
        self.trending = Periodic("trending", trending_interval_s, lambda: trending.run_once(sources.titles),
                                 initial_delay_s=5.0)
        self.recommendations = RecommendationScheduler(sources, recommendations_interval_s)

    @property
    def all(self) -> list[Periodic]:
        return [self.publish, self.trending, self.recommendations]

    async def start(self) -> None:
        for job in self.all:
            await job.start()

    async def stop(self) -> None:
        for job in self.all:
            await job.stop()
