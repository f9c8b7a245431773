"""Titles suggested for one of my profiles, each with the reason it was suggested."""

from __future__ import annotations

from pydantic import Field

from handlers.base import endpoint
from handlers.catalog.models import Recommendations
from handlers.catalog.viewing import ViewerHandler, ViewerQuery
from server.catalog.recommendations import RecommendationService
from server.catalog.viewers import ViewerResolver

TAGS = ("me",)


class RecommendationQuery(ViewerQuery):
    limit: int = Field(default=20, ge=1, le=50)


class RecommendationsHandler(ViewerHandler):
    recommendations: RecommendationService

    @endpoint("Titles suggested from my activity and preferences, each with a reason", query=RecommendationQuery,
              response=Recommendations, auth=True, tags=TAGS, errors=(404,))
    async def get(self) -> None:
        query = self.parse_query(RecommendationQuery)
        viewer = await self.viewer(query.profile_id)
        self.reply(await self.recommendations.for_viewer(viewer, query.limit))


def routes(viewers: ViewerResolver, recommendations: RecommendationService) -> list:
    return [(r"/me/recommendations", RecommendationsHandler,
             {"viewers": viewers, "recommendations": recommendations})]
