"""What the watch-party invite endpoint replies."""

from __future__ import annotations

from pydantic import Field

from handlers.models import Reply


class Invite(Reply):
    party_id: str
    content_id: str = Field(description="the movie or episode the party plays")
    title_id: str
    title: str
    episode: str | None = Field(description="the episode's name, for a series")
    host: str | None = Field(description="the host's display name")
    members: int
    invite_expires_ms: int
