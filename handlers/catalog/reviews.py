"""Reviews of a title: one per profile; authors edit and delete their own, content
managers moderate. Review text is returned as JSON data, exactly as it was written."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from handlers.base import endpoint
from handlers.catalog.models import Review, Reviews
from handlers.catalog.viewing import ViewerHandler, ViewerQuery
from handlers.routing import ApiHandler
from server.catalog.reviews import MAX_TEXT, ReviewService
from server.catalog.viewers import ViewerResolver
from server.core.fields import Body
from server.core.ids import ID_PATTERN

TAGS = ("reviews",)


class ReviewCreate(Body):
    rating: int = Field(ge=1, le=5)
    text: str = Field(default="", max_length=MAX_TEXT)


class ReviewPatch(Body):
    rating: int | None = Field(default=None, ge=1, le=5)
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    status: Literal["visible", "hidden"] | None = Field(default=None, description="moderators only")


class TitleReviewsHandler(ViewerHandler):
    reviews: ReviewService

    @endpoint("Reviews of a title, newest first, with the title's average and count", query=ViewerQuery,
              response=Reviews, auth=True, tags=TAGS, errors=(404,))
    async def get(self, title_id: str) -> None:
        query = self.parse_query(ViewerQuery)
        viewer = await self.viewer(query.profile_id)
        self.reply(await self.reviews.list(viewer, title_id, query.limit, query.cursor))

    @endpoint("Review a title (one review per profile and title)", body=ReviewCreate, query=ViewerQuery,
              response=Review, status=201, auth=True, tags=TAGS, errors=(404, 409))
    async def post(self, title_id: str) -> None:
        query = self.parse_query(ViewerQuery)
        body = self.parse(ReviewCreate)
        viewer = await self.viewer(query.profile_id)
        self.reply(await self.reviews.create(viewer, title_id, body.rating, body.text), 201)


class ReviewHandler(ApiHandler):
    def initialize(self, reviews: ReviewService) -> None:
        self.reviews = reviews

    @endpoint("Edit my review, or hide/show one as a moderator", body=ReviewPatch, response=Review, auth=True,
              tags=TAGS, errors=(403, 404, 409))
    async def patch(self, review_id: str) -> None:
        body = self.parse(ReviewPatch)
        changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
        self.reply(await self.reviews.update(self.user, review_id, changes, self.client_ip))

    @endpoint("Delete my review, or any review as a moderator", status=204, auth=True, tags=TAGS, errors=(404,))
    async def delete(self, review_id: str) -> None:
        await self.reviews.delete(self.user, review_id, self.client_ip)
        self.no_content()


def routes(viewers: ViewerResolver, reviews: ReviewService) -> list:
    return [
        (rf"/titles/(?P<title_id>{ID_PATTERN})/reviews", TitleReviewsHandler,
         {"viewers": viewers, "reviews": reviews}),
        (rf"/reviews/(?P<review_id>{ID_PATTERN})", ReviewHandler, {"reviews": reviews}),
    ]
