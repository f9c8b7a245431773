"""The catalog for viewers: browse and search titles, a title, its episodes, categories,
and the home page rows."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from handlers.base import endpoint
from handlers.catalog.models import Categories, Episodes, Home, TitleDetail, Titles
from handlers.catalog.viewing import ViewerHandler, ViewerQuery
from handlers.routing import ApiHandler
from server.catalog.browse import CatalogService
from server.catalog.home import HomeService
from server.catalog.viewers import ViewerResolver
from server.core.fields import Language, Search, Slug
from server.core.ids import ID_PATTERN

TAGS = ("catalog",)


class BrowseQuery(ViewerQuery):
    kind: Literal["movie", "series"] | None = Field(default=None, alias="type")
    genre: Slug | None = None
    category: Slug | None = None
    language: Language | None = None
    q: Search | None = None
    sort: Literal["popular", "new", "rating", "trending"] = "popular"


class EpisodesQuery(ViewerQuery):
    season: int | None = Field(default=None, ge=0, le=999)


class TitlesHandler(ViewerHandler):
    catalog: CatalogService

    @endpoint("Browse and search the titles I may watch (type, genre, q, sort; cursor paging)", query=BrowseQuery,
              response=Titles, auth=True, tags=TAGS, errors=(404, 503))
    async def get(self) -> None:
        query = self.parse_query(BrowseQuery)
        viewer = await self.viewer(query.profile_id)
        self.reply(await self.catalog.browse(viewer, kind=query.kind, genre=query.genre, category=query.category,
                                             language=query.language, q=query.q, sort=query.sort,
                                             limit=query.limit, cursor=query.cursor))


class TitleHandler(ViewerHandler):
    catalog: CatalogService

    @endpoint("A title; a series includes its seasons", query=ViewerQuery, response=TitleDetail, auth=True, tags=TAGS,
              errors=(404, 503))
    async def get(self, title_id: str) -> None:
        query = self.parse_query(ViewerQuery)
        self.reply(await self.catalog.title(await self.viewer(query.profile_id), title_id))


class EpisodesHandler(ViewerHandler):
    catalog: CatalogService

    @endpoint("Episodes of a series, in order, optionally of one season", query=EpisodesQuery, response=Episodes,
              auth=True, tags=TAGS, errors=(404,))
    async def get(self, title_id: str) -> None:
        query = self.parse_query(EpisodesQuery)
        viewer = await self.viewer(query.profile_id)
        self.reply(await self.catalog.episodes(viewer, title_id, query.season, query.limit, query.cursor))


class CategoriesHandler(ApiHandler):
    def initialize(self, catalog: CatalogService) -> None:
        self.catalog = catalog

    @endpoint("Categories and genres", response=Categories, tags=TAGS)
    async def get(self) -> None:
        self.reply({"items": await self.catalog.categories(), "next_cursor": None})


class HomeHandler(ViewerHandler):
    home: HomeService

    @endpoint("My home page: continue watching, recommended, trending, new releases, coming soon, then per genre",
              query=ViewerQuery, response=Home, auth=True, tags=TAGS, errors=(404, 503))
    async def get(self) -> None:
        query = self.parse_query(ViewerQuery)
        self.reply(await self.home.home(await self.viewer(query.profile_id)))


def routes(viewers: ViewerResolver, catalog: CatalogService, home: HomeService) -> list:
    deps = {"viewers": viewers, "catalog": catalog}
    tid = rf"(?P<title_id>{ID_PATTERN})"
    return [
        (r"/titles", TitlesHandler, deps),
        (rf"/titles/{tid}", TitleHandler, deps),
        (rf"/titles/{tid}/episodes", EpisodesHandler, deps),
        (r"/categories", CategoriesHandler, {"catalog": catalog}),
        (r"/home", HomeHandler, {"viewers": viewers, "home": home}),
    ]
