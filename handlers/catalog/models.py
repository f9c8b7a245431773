"""What the catalog endpoints reply: title cards and details, episodes, categories, the
home rows, history, the watchlist, recommendations, reviews, and the content managers'
views of titles and episodes."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from handlers.models import Page, Reply
from server.catalog.admin import TITLE_STATUSES
from server.catalog.maturity import RATINGS

Kind = Literal["movie", "series"]
MaturityRating = Literal[RATINGS]  # type: ignore[valid-type]


class Rating(Reply):
    average: float | None = Field(description="null until the first review")
    count: int


class ArtworkView(Reply):
    poster: str | None = None
    backdrop: str | None = None
    logo: str | None = None


class EpisodeArtworkView(Reply):
    still: str | None = None


class TitleCard(Reply):
    """The compact form every list shows."""

    id: str
    type: Kind
    title: str
    year: int | None
    genres: list[str]
    maturity_rating: MaturityRating
    artwork: ArtworkView
    runtime_s: int | None
    rating: Rating
    playable: bool = Field(description="whether a movie, or an episode of a series, has media ready to play")


class AudioTrackView(Reply):
    language: str
    label: str | None
    kind: Literal["main", "description", "commentary"]


class SubtitleTrackView(Reply):
    language: str
    label: str | None
    kind: Literal["subtitles", "captions", "forced"]


class CastMemberView(Reply):
    name: str
    character: str | None


class CrewMemberView(Reply):
    name: str
    job: str


class Season(Reply):
    number: int
    name: str
    synopsis: str | None
    episode_count: int = Field(description="published episodes")


class TitleDetail(TitleCard):
    original_title: str | None
    synopsis: str | None
    categories: list[str]
    languages: list[str]
    audio_tracks: list[AudioTrackView]
    subtitle_tracks: list[SubtitleTrackView]
    cast: list[CastMemberView]
    crew: list[CrewMemberView]
    published_at: dt.datetime | None
    available_until: dt.datetime | None
    seasons: list[Season] = Field(default_factory=list, description="series only: seasons with published episodes")


class Episode(Reply):
    id: str
    title_id: str
    season: int
    number: int
    name: str
    synopsis: str | None
    runtime_s: int | None
    playable: bool
    artwork: EpisodeArtworkView
    published_at: dt.datetime | None


class Category(Reply):
    id: str
    slug: str
    name: str
    kind: Literal["genre", "collection"]
    position: int


class Titles(Page[TitleCard]):
    pass


class Episodes(Page[Episode]):
    pass


class Categories(Page[Category]):
    pass


class EpisodeRef(Reply):
    id: str
    season: int
    number: int
    name: str


class ContinueWatching(Reply):
    title: TitleCard
    content_id: str = Field(description="what to play: the movie, or the episode to resume or start next")
    episode: EpisodeRef | None
    position: float
    duration: float
    progress: float = Field(description="position / duration, 0 to 1")
    up_next: bool = Field(description="the next episode, from the start")
    last_watched_at: dt.datetime


class Recommendation(Reply):
    title: TitleCard
    reason: str
    score: float


class RowTitle(Reply):
    title: TitleCard


class ComingSoon(Reply):
    title: TitleCard
    publish_at: dt.datetime = Field(description="when the title is released; until then it cannot be opened or played")


class HomeRow(Reply):
    id: str = Field(description="continue_watching, recommended, trending, new_releases, coming_soon, or genre:<slug>")
    title: str
    items: list[ContinueWatching | Recommendation | ComingSoon | RowTitle] = Field(
        description="continue_watching: ContinueWatching; recommended: Recommendation; coming_soon: ComingSoon; "
                    "the others: RowTitle")
    genre: str | None = Field(default=None, description="genre rows only: the genre's slug")


class Home(Reply):
    profile_id: str
    rows: list[HomeRow] = Field(description="the first four always present, possibly empty; then coming_soon when "
                                            "any title is announced; then genre rows")


class Recommendations(Page[Recommendation]):
    computed_at: dt.datetime | None = Field(description="when the suggestions were last computed for this profile")


class MissingTitle(Reply):
    """A title no longer on record, as history shows it."""

    id: str
    title: None


class HistoryEntry(Reply):
    content_id: str
    title: TitleCard | MissingTitle
    episode: EpisodeRef | None
    position: float
    duration: float
    completed: bool
    last_watched_at: dt.datetime
    finished_at: dt.datetime | None


class History(Page[HistoryEntry]):
    pass


class WatchlistEntry(Reply):
    title: TitleCard
    added_at: dt.datetime
    publish_at: dt.datetime | None = Field(default=None, description="announced titles only: when it is released")


class Watchlist(Page[WatchlistEntry]):
    pass


class Author(Reply):
    name: str


class Review(Reply):
    id: str
    title_id: str
    rating: int = Field(ge=1, le=5)
    text: str
    author: Author
    mine: bool
    status: Literal["visible", "hidden"]
    created_at: dt.datetime
    edited_at: dt.datetime | None


class Reviews(Page[Review]):
    rating: Rating = Field(description="the title's average and count")


class AdminSeason(Reply):
    number: int
    name: str | None
    synopsis: str | None
    episode_count: int = Field(description="episodes of any status")


class AdminTitle(Reply):
    """A title as content managers see it, any status."""

    id: str
    type: Kind
    title: str
    original_title: str | None
    synopsis: str | None
    year: int | None
    maturity_rating: MaturityRating
    runtime_s: int | None
    media_asset_id: str | None
    status: Literal[TITLE_STATUSES]  # type: ignore[valid-type]
    popularity: float
    version: int = Field(description="send back as `version` on PATCH to fail with 409 on a concurrent change")
    playable: bool
    genres: list[str]
    categories: list[str]
    languages: list[str]
    audio_tracks: list[AudioTrackView]
    subtitle_tracks: list[SubtitleTrackView]
    cast: list[CastMemberView]
    crew: list[CrewMemberView]
    artwork: ArtworkView
    publish_at: dt.datetime | None
    published_at: dt.datetime | None
    available_from: dt.datetime | None
    available_until: dt.datetime | None
    rating: Rating
    created_at: dt.datetime
    updated_at: dt.datetime
    seasons: list[AdminSeason] = Field(default_factory=list, description="series, one title only: every season")


class AdminTitles(Page[AdminTitle]):
    pass


class AdminEpisode(Reply):
    id: str
    title_id: str
    season: int
    number: int
    name: str
    synopsis: str | None
    runtime_s: int | None
    media_asset_id: str | None
    status: Literal["scheduled", "published"]
    playable: bool
    artwork: EpisodeArtworkView
    publish_at: dt.datetime | None
    published_at: dt.datetime | None


class AdminEpisodes(Page[AdminEpisode]):
    pass
