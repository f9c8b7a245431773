"""Playback sessions (start, heartbeat, stop) and the signed media files themselves."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Literal

from pydantic import Field, StringConstraints
from tornado.web import StaticFileHandler

from handlers.base import BaseHandler, endpoint
from handlers.models import Body
from server import errors
from server.playback import PlaybackService
from storage.media_store import BadKey, MediaStore, check_key

TAGS = ("playback",)
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
TYPES = {".ts": "video/mp2t", ".m3u8": PLAYLIST_TYPE, ".jpg": "image/jpeg"}


class StartBody(Body):
    profile_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{24}$")] | None = None


class HeartbeatBody(Body):
    model_config = Body.model_config | {"strict": False}
    position: float = Field(ge=0, le=48 * 3600)
    state: Literal["playing", "paused", "buffering", "ended"]


class PlaybackHandler(BaseHandler):
    def initialize(self, playback: PlaybackService) -> None:
        self.playback = playback


class StartHandler(PlaybackHandler):
    @endpoint("Start playing: entitlement, stream slot, signed manifest URL, resume position", body=StartBody,
              auth=True, tags=TAGS, errors=(402, 404, 429))
    async def post(self, content_id: str) -> None:
        body = self.parse(StartBody)
        started = await self.playback.start(self.user.user_id, content_id, body.profile_id)
        base = self.platform.settings.public_url.rstrip("/") or f"{self.request.protocol}://{self.request.host}"
        path = started.pop("manifest_path")
        self.reply({**started, "manifest_url": base + path})


class HeartbeatHandler(PlaybackHandler):
    @endpoint("Report position and state: keeps the stream slot, records watch history", body=HeartbeatBody,
              auth=True, tags=TAGS, errors=(404, 409))
    async def post(self, session_id: str) -> None:
        body = self.parse(HeartbeatBody)
        self.reply(await self.playback.heartbeat(self.user.user_id, session_id, body.position, body.state))


class StopHandler(PlaybackHandler):
    @endpoint("Stop playing: frees the stream slot", status=204, auth=True, tags=TAGS, errors=(404,))
    async def delete(self, session_id: str) -> None:
        await self.playback.stop(self.user.user_id, session_id)
        self.no_content()


class MediaHandler(BaseHandler, StaticFileHandler):
    """Signed HLS playlists (rendered per request) and segments (from disk, with Range)."""

    ip_rate_limited = False  # a player fetches a segment every few seconds; the token is the gate

    def initialize(self, playback: PlaybackService, store: MediaStore) -> None:  # type: ignore[override]
        local_root = store.local_path("x")
        StaticFileHandler.initialize(self, str(local_root.parent) if local_root else "/nonexistent")
        self.playback = playback
        self.store = store

    async def prepare(self) -> None:
        await super().prepare()
        raw = urllib.parse.unquote(self.request.path)
        key = raw.removeprefix("/media/")
        try:
            self.key = check_key(key)
            self.token = self.get_query_argument("t", None)
            self.grant = self.playback.authorize(self.key, self.token)
        except BadKey:
            self.reject(errors.NotFound("No such media.", code="media_not_found"))
        except errors.ApiError as err:
            self.reject(err)

    @endpoint("A signed playlist or media segment (?t= token)", tags=TAGS, errors=(403, 404))
    async def get(self, key: str, include_body: bool = True) -> None:
        self.set_header("Cache-Control", "private, max-age=60")
        if self.key.endswith("/master.m3u8"):
            self._playlist(await self.playback.master(self.key, self.grant))
            return
        if self.key.endswith(".m3u8"):
            assert self.token is not None
            self._playlist(await self.playback.variant(self.key, self.grant, self.token))
            return
        if self.store.local_path(self.key) is None:  # cloud storage serves segments itself
            raise errors.NotFound("No such media.", code="media_not_found")
        await StaticFileHandler.get(self, self.key, include_body)

    def _playlist(self, text: str) -> None:
        self.rendered = True
        self.set_header("Content-Type", PLAYLIST_TYPE)
        self.finish(text)

    rendered = False

    def compute_etag(self) -> str | None:
        # Playlists are rendered per request (tokens differ); files get the static ETag.
        return None if self.rendered or getattr(self, "absolute_path", None) is None else super().compute_etag()

    def get_content_type(self) -> str:
        suffix = "." + self.absolute_path.rsplit(".", 1)[-1] if self.absolute_path else ""
        return TYPES.get(suffix, "application/octet-stream")

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        try:
            return super().validate_absolute_path(root, absolute_path)
        except Exception:
            raise errors.NotFound("No such media.", code="media_not_found") from None


def routes(playback: PlaybackService) -> list:
    deps = {"playback": playback}
    return [
        (r"/playback/(?P<content_id>[0-9a-f]{24})/start", StartHandler, deps),
        (r"/playback/sessions/(?P<session_id>[0-9a-f]{24})/heartbeat", HeartbeatHandler, deps),
        (r"/playback/sessions/(?P<session_id>[0-9a-f]{24})", StopHandler, deps),
    ]


def media_routes(playback: PlaybackService, store: MediaStore) -> list:
    return [(r"/media/(?P<key>.+)", MediaHandler, {"playback": playback, "store": store})]
