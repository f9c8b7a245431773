"""Content management for content managers: titles, seasons, episodes, categories, the
release schedule and archiving. Every change is audited by the service."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from handlers.base import endpoint
from handlers.catalog.models import (
    AdminEpisode,
    AdminEpisodes,
    AdminSeason,
    AdminTitle,
    AdminTitles,
    Categories,
    Category,
)
from handlers.routing import ApiHandler
from server.catalog.admin import TITLE_STATUSES, ContentAdminService
from server.catalog.maturity import RATINGS
from server.core import errors
from server.core.fields import Body, Id, Language, PageQuery, Search, ShortName, Slug, Text, Timestamp
from server.core.ids import ID_PATTERN

TAGS = ("admin", "content")
PERMISSION = "content.manage"

Synopsis = Annotated[str, StringConstraints(max_length=4000)]
ImageUrl = Annotated[str, StringConstraints(
    max_length=10_000, pattern=r"^(https?://|/|data:image/(svg\+xml|png|jpeg|webp);base64,)")]
MaturityRating = Literal[RATINGS]  # type: ignore[valid-type]
Status = Literal[TITLE_STATUSES]  # type: ignore[valid-type]


class AudioTrack(Body):
    language: Language
    label: Text | None = None
    kind: Literal["main", "description", "commentary"] = "main"


class SubtitleTrack(Body):
    language: Language
    label: Text | None = None
    kind: Literal["subtitles", "captions", "forced"] = "subtitles"


class CastMember(Body):
    name: Text
    character: Text | None = None


class CrewMember(Body):
    name: Text
    job: Text


class Artwork(Body):
    poster: ImageUrl | None = None
    backdrop: ImageUrl | None = None
    logo: ImageUrl | None = None


class EpisodeArtwork(Body):
    still: ImageUrl | None = None


class TitleFields(Body):
    """Everything about a title a content manager edits; on PATCH, only what is sent changes."""

    title: Text | None = None
    original_title: Text | None = None
    synopsis: Synopsis | None = None
    year: int | None = Field(default=None, ge=1870, le=2100)
    genres: list[Slug] | None = Field(default=None, max_length=10)
    categories: list[Slug] | None = Field(default=None, max_length=20)
    maturity_rating: MaturityRating | None = None
    languages: list[Language] | None = Field(default=None, max_length=20)
    audio_tracks: list[AudioTrack] | None = Field(default=None, max_length=30)
    subtitle_tracks: list[SubtitleTrack] | None = Field(default=None, max_length=60)
    cast: list[CastMember] | None = Field(default=None, max_length=100)
    crew: list[CrewMember] | None = Field(default=None, max_length=100)
    artwork: Artwork | None = None
    runtime_s: int | None = Field(default=None, ge=1, le=100_000)
    media_asset_id: Id | None = None
    available_from: Timestamp | None = None
    available_until: Timestamp | None = None


class TitleCreate(TitleFields):
    type: Literal["movie", "series"]
    title: Text
    publish_at: Timestamp | None = Field(default=None, description="schedule the release at once")


class TitlePatch(TitleFields):
    version: int | None = Field(default=None, ge=1, description="fail with 409 if the title changed since")


class PublishBody(Body):
    without_media: bool = Field(default=False, description="publish even though no media is ready (else 409 "
                                                            "media_not_ready)")


class ScheduleBody(Body):
    publish_at: Timestamp


class SeasonCreate(Body):
    number: int = Field(ge=0, le=999)
    name: Text | None = None
    synopsis: Synopsis = ""


class SeasonPatch(Body):
    name: Text | None = None
    synopsis: Synopsis | None = None


class EpisodeCreate(Body):
    title_id: Id
    season: int = Field(ge=0, le=999)
    number: int = Field(ge=1, le=9999)
    name: Text
    synopsis: Synopsis = ""
    runtime_s: int | None = Field(default=None, ge=1, le=100_000)
    media_asset_id: Id | None = None
    artwork: EpisodeArtwork | None = None
    publish_at: Timestamp | None = None


class EpisodePatch(Body):
    season: int | None = Field(default=None, ge=0, le=999)
    number: int | None = Field(default=None, ge=1, le=9999)
    name: Text | None = None
    synopsis: Synopsis | None = None
    runtime_s: int | None = Field(default=None, ge=1, le=100_000)
    media_asset_id: Id | None = None
    artwork: EpisodeArtwork | None = None
    publish_at: Timestamp | None = None


class CategoryCreate(Body):
    slug: Slug
    name: ShortName
    kind: Literal["genre", "collection"]
    position: int = Field(default=0, ge=0, le=10_000)


class CategoryPatch(Body):
    name: ShortName | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)


class AdminTitleQuery(PageQuery):
    status: Status | None = None
    kind: Literal["movie", "series"] | None = Field(default=None, alias="type")
    q: Search | None = None


class AdminEpisodeQuery(PageQuery):
    title_id: Id
    season: int | None = Field(default=None, ge=0, le=999)


REQUIRED_ON_PATCH = {"title": "cannot be empty", "name": "cannot be empty", "season": "cannot be empty",
                     "number": "cannot be empty"}
LISTS = ("genres", "categories", "languages", "audio_tracks", "subtitle_tracks", "cast", "crew")


def patch_changes(body: Body, *, exclude: set[str] | None = None) -> dict:
    """The fields the client sent; an explicit null clears an optional field, never a
    required one, and an emptied list is stored as []."""
    changes = body.model_dump(exclude_unset=True, exclude=exclude)
    for name, message in REQUIRED_ON_PATCH.items():
        if name in changes and changes[name] is None:
            raise errors.ValidationFailed(details={"fields": {name: message}})
    for name in LISTS:
        if name in changes and changes[name] is None:
            changes[name] = []
    return changes


class ContentHandler(ApiHandler):
    def initialize(self, content: ContentAdminService) -> None:
        self.content = content


class TitlesHandler(ContentHandler):
    @endpoint("All titles, any status, newest first (status, type, q)", query=AdminTitleQuery, response=AdminTitles,
              permission=PERMISSION, tags=TAGS)
    async def get(self) -> None:
        query = self.parse_query(AdminTitleQuery)
        page = await self.content.list_titles(status=query.status, kind=query.kind, q=query.q, limit=query.limit,
                                              cursor=query.cursor)
        self.reply({"items": page.items, "next_cursor": page.next_cursor})

    @endpoint("Create a movie or a series (a draft, or scheduled with publish_at)", body=TitleCreate,
              response=AdminTitle, status=201, permission=PERMISSION, tags=TAGS, errors=(422,))
    async def post(self) -> None:
        body = self.parse(TitleCreate)
        self.reply(await self.content.create_title(self.user, body.model_dump(), self.client_ip), 201)


class TitleHandler(ContentHandler):
    @endpoint("One title with its seasons, any status", response=AdminTitle, permission=PERMISSION, tags=TAGS,
              errors=(404,))
    async def get(self, title_id: str) -> None:
        self.reply(await self.content.get_title(title_id))

    @endpoint("Edit a title's metadata, window or media", body=TitlePatch, response=AdminTitle, permission=PERMISSION,
              tags=TAGS, errors=(404, 409, 422))
    async def patch(self, title_id: str) -> None:
        body = self.parse(TitlePatch)
        changes = patch_changes(body, exclude={"version"})
        self.reply(await self.content.update_title(self.user, title_id, changes, self.client_ip, body.version))


class PublishHandler(ContentHandler):
    @endpoint("Publish a title now: 409 media_not_ready unless it (or, for a series, an episode) has ready media or "
              "the body says without_media", body=PublishBody, response=AdminTitle, permission=PERMISSION, tags=TAGS,
              errors=(404, 409))
    async def post(self, title_id: str) -> None:
        body = self.parse(PublishBody)
        self.reply(await self.content.publish(self.user, title_id, self.client_ip,
                                              without_media=body.without_media))


class ScheduleHandler(ContentHandler):
    @endpoint("Schedule a title's release at publish_at", body=ScheduleBody, response=AdminTitle, permission=PERMISSION,
              tags=TAGS, errors=(404, 409))
    async def post(self, title_id: str) -> None:
        body = self.parse(ScheduleBody)
        self.reply(await self.content.schedule(self.user, title_id, body.publish_at.astimezone(dt.UTC),
                                               self.client_ip))


class ArchiveHandler(ContentHandler):
    @endpoint("Archive a title: viewers no longer see it", response=AdminTitle, permission=PERMISSION, tags=TAGS,
              errors=(404, 409))
    async def post(self, title_id: str) -> None:
        self.reply(await self.content.archive(self.user, title_id, self.client_ip))


class UnpublishHandler(ContentHandler):
    @endpoint("Move a title back to draft", response=AdminTitle, permission=PERMISSION, tags=TAGS, errors=(404, 409))
    async def post(self, title_id: str) -> None:
        self.reply(await self.content.unpublish(self.user, title_id, self.client_ip))


class SeasonsHandler(ContentHandler):
    @endpoint("Add a season to a series", body=SeasonCreate, response=AdminSeason, status=201, permission=PERMISSION,
              tags=TAGS, errors=(404, 409, 422))
    async def post(self, title_id: str) -> None:
        body = self.parse(SeasonCreate)
        self.reply(await self.content.add_season(self.user, title_id, body.model_dump(), self.client_ip), 201)


class SeasonHandler(ContentHandler):
    @endpoint("Rename or describe a season", body=SeasonPatch, response=AdminSeason, permission=PERMISSION, tags=TAGS,
              errors=(404, 422))
    async def patch(self, title_id: str, number: str) -> None:
        body = self.parse(SeasonPatch)
        self.reply(await self.content.update_season(self.user, title_id, int(number), patch_changes(body),
                                                    self.client_ip))

    @endpoint("Delete an empty season", status=204, permission=PERMISSION, tags=TAGS, errors=(404, 409, 422))
    async def delete(self, title_id: str, number: str) -> None:
        await self.content.delete_season(self.user, title_id, int(number), self.client_ip)
        self.no_content()


class EpisodesHandler(ContentHandler):
    @endpoint("Episodes of a series, any status, in order", query=AdminEpisodeQuery, response=AdminEpisodes,
              permission=PERMISSION, tags=TAGS, errors=(404, 422))
    async def get(self) -> None:
        query = self.parse_query(AdminEpisodeQuery)
        page = await self.content.list_episodes(query.title_id, query.season, query.limit, query.cursor)
        self.reply({"items": page.items, "next_cursor": page.next_cursor})

    @endpoint("Add an episode (released at once, or at publish_at)", body=EpisodeCreate, response=AdminEpisode,
              status=201, permission=PERMISSION, tags=TAGS, errors=(404, 409, 422))
    async def post(self) -> None:
        body = self.parse(EpisodeCreate)
        self.reply(await self.content.create_episode(self.user, body.model_dump(), self.client_ip), 201)


class EpisodeHandler(ContentHandler):
    @endpoint("Edit an episode", body=EpisodePatch, response=AdminEpisode, permission=PERMISSION, tags=TAGS,
              errors=(404, 409, 422))
    async def patch(self, episode_id: str) -> None:
        body = self.parse(EpisodePatch)
        self.reply(await self.content.update_episode(self.user, episode_id, patch_changes(body), self.client_ip))

    @endpoint("Delete an episode", status=204, permission=PERMISSION, tags=TAGS, errors=(404,))
    async def delete(self, episode_id: str) -> None:
        await self.content.delete_episode(self.user, episode_id, self.client_ip)
        self.no_content()


class CategoriesHandler(ContentHandler):
    @endpoint("Categories and genres", response=Categories, permission=PERMISSION, tags=TAGS)
    async def get(self) -> None:
        self.reply({"items": await self.content.list_categories(), "next_cursor": None})

    @endpoint("Create a genre or a collection", body=CategoryCreate, response=Category, status=201,
              permission=PERMISSION, tags=TAGS, errors=(409,))
    async def post(self) -> None:
        body = self.parse(CategoryCreate)
        self.reply(await self.content.create_category(self.user, body.model_dump(), self.client_ip), 201)


class CategoryHandler(ContentHandler):
    @endpoint("Rename or reorder a category", body=CategoryPatch, response=Category, permission=PERMISSION, tags=TAGS,
              errors=(404,))
    async def patch(self, category_id: str) -> None:
        body = self.parse(CategoryPatch)
        changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
        self.reply(await self.content.update_category(self.user, category_id, changes, self.client_ip))

    @endpoint("Delete a category no title uses", status=204, permission=PERMISSION, tags=TAGS, errors=(404, 409))
    async def delete(self, category_id: str) -> None:
        await self.content.delete_category(self.user, category_id, self.client_ip)
        self.no_content()


def routes(content: ContentAdminService) -> list:
    deps = {"content": content}
    tid = rf"(?P<title_id>{ID_PATTERN})"
    return [
        (r"/admin/titles", TitlesHandler, deps),
        (rf"/admin/titles/{tid}", TitleHandler, deps),
        (rf"/admin/titles/{tid}/publish", PublishHandler, deps),
        (rf"/admin/titles/{tid}/schedule", ScheduleHandler, deps),
        (rf"/admin/titles/{tid}/archive", ArchiveHandler, deps),
        (rf"/admin/titles/{tid}/unpublish", UnpublishHandler, deps),
        (rf"/admin/titles/{tid}/seasons", SeasonsHandler, deps),
        (rf"/admin/titles/{tid}/seasons/(?P<number>[0-9]{{1,3}})", SeasonHandler, deps),
        (r"/admin/episodes", EpisodesHandler, deps),
        (rf"/admin/episodes/(?P<episode_id>{ID_PATTERN})", EpisodeHandler, deps),
        (r"/admin/categories", CategoriesHandler, deps),
        (rf"/admin/categories/(?P<category_id>{ID_PATTERN})", CategoryHandler, deps),
    ]
