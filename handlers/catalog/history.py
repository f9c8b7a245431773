"""My watch history and my list (watchlist), per profile."""

from __future__ import annotations

from handlers.base import endpoint
from handlers.catalog.models import History, Watchlist
from handlers.catalog.viewing import ViewerHandler, ViewerQuery
from server.catalog.history import HistoryService
from server.catalog.viewers import ViewerResolver
from server.core.ids import ID_PATTERN

TAGS = ("me",)


class HistoryHandler(ViewerHandler):
    history: HistoryService

    @endpoint("My watch history, most recent first: position, duration, completed", query=ViewerQuery, response=History,
              auth=True, tags=TAGS, errors=(404,))
    async def get(self) -> None:
        query = self.parse_query(ViewerQuery)
        viewer = await self.viewer(query.profile_id)
        self.reply(await self.history.history(viewer, query.limit, query.cursor))


class WatchlistHandler(ViewerHandler):
    history: HistoryService

    @endpoint("My list, newest first", query=ViewerQuery, response=Watchlist, auth=True, tags=TAGS, errors=(404,))
    async def get(self) -> None:
        query = self.parse_query(ViewerQuery)
        viewer = await self.viewer(query.profile_id)
        self.reply(await self.history.watchlist(viewer, query.limit, query.cursor))


class WatchlistItemHandler(ViewerHandler):
    history: HistoryService

    @endpoint("Add a title to my list, released or announced (adding twice keeps one entry)", query=ViewerQuery,
              status=204, auth=True, tags=TAGS, errors=(404,))
    async def put(self, title_id: str) -> None:
        query = self.parse_query(ViewerQuery)
        await self.history.add_to_watchlist(await self.viewer(query.profile_id), title_id)
        self.no_content()

    @endpoint("Remove a title from my list", query=ViewerQuery, status=204, auth=True, tags=TAGS, errors=(404,))
    async def delete(self, title_id: str) -> None:
        query = self.parse_query(ViewerQuery)
        await self.history.remove_from_watchlist(await self.viewer(query.profile_id), title_id)
        self.no_content()


def routes(viewers: ViewerResolver, history: HistoryService) -> list:
    deps = {"viewers": viewers, "history": history}
    return [
        (r"/me/history", HistoryHandler, deps),
        (r"/me/watchlist", WatchlistHandler, deps),
        (rf"/me/watchlist/(?P<title_id>{ID_PATTERN})", WatchlistItemHandler, deps),
    ]
