"""Playback sessions (start, heartbeat, stop) and the signed media files themselves."""

from __future__ import annotations

import asyncio
import os
from typing import Literal

from pydantic import Field
from tornado.web import StaticFileHandler

from handlers.base import endpoint
from handlers.media.models import HeartbeatAck, PlaybackStarted
from handlers.routing import ApiHandler, MediaFileHandler
from server.core import errors
from server.core.fields import Body, Id
from server.core.ids import ID_PATTERN
from server.media.playback import PlaybackService
from server.media.transcode import CONTENT_TYPES, PLAYLIST_TYPE

TAGS = ("playback",)


class StartBody(Body):
    profile_id: Id | None = None


class HeartbeatBody(Body):
    model_config = Body.model_config | {"strict": False}
    position: float = Field(ge=0, le=48 * 3600)
    state: Literal["playing", "paused", "buffering", "ended"]


class PlaybackHandler(ApiHandler):
    def initialize(self, playback: PlaybackService) -> None:
        self.playback = playback


class StartHandler(PlaybackHandler):
    @endpoint("Start playing: entitlement, stream slot, signed manifest URL, resume position", body=StartBody,
              response=PlaybackStarted, auth=True, tags=TAGS, errors=(402, 404, 429))
    async def post(self, content_id: str) -> None:
        body = self.parse(StartBody)
        started = await self.playback.start(self.user.user_id, self.user.session_id, content_id,
                                             body.profile_id)
        base = self.platform.settings.public_url.rstrip("/") or f"{self.request.protocol}://{self.request.host}"
        path = started.pop("manifest_path")
        self.reply({**started, "manifest_url": base + path})


class HeartbeatHandler(PlaybackHandler):
    @endpoint("Report position and state: keeps the stream slot, records watch history", body=HeartbeatBody,
              response=HeartbeatAck, auth=True, tags=TAGS, errors=(404, 409))
    async def post(self, session_id: str) -> None:
        body = self.parse(HeartbeatBody)
        self.reply(await self.playback.heartbeat(self.user.user_id, session_id, body.position, body.state))


class StopHandler(PlaybackHandler):
    @endpoint("Stop playing: frees the stream slot", status=204, auth=True, tags=TAGS, errors=(404,))
    async def delete(self, session_id: str) -> None:
        await self.playback.stop(self.user.user_id, session_id)
        self.no_content()


class MediaHandler(MediaFileHandler, StaticFileHandler):
    """`/media/<token>/<key>`: the master playlist is rendered per plan; rendition playlists
    and segments are the stored files, from disk with Range (or, with cloud storage, the
    playlist from the bucket and each segment a redirect to a short-lived signed URL)."""

    def initialize(self, playback: PlaybackService, root: str) -> None:  # type: ignore[override]
        StaticFileHandler.initialize(self, root)
        self.playback = playback

    async def admit(self) -> None:
        token, key = self.path_kwargs.get("token", ""), self.path_kwargs.get("key", "")
        self.grant = await self.playback.authorize(key, token)
        self.key = key

    @endpoint("A signed playlist or media segment", status=(200, 206, 302, 304), tags=TAGS, errors=(403, 404, 416, 503),
              content_type=tuple(CONTENT_TYPES.values()))
    async def get(self, token: str, key: str, include_body: bool = True) -> None:
        if self.key.endswith("/master.m3u8"):
            self._playlist((await self.playback.master(self.key, self.grant)).encode())
        elif self.playback.local_media:
            self.set_header("Cache-Control", "private, max-age=3600")  # immutable per asset version
            await StaticFileHandler.get(self, self.key, include_body)
        elif self.key.endswith(".m3u8"):
            self._playlist(await self.playback.stored_playlist(self.key))
        else:
            self.set_header("Cache-Control", "no-store")  # the signed URL outlives no cache
            self.redirect(await asyncio.to_thread(self.playback.segment_url, self.key))

    @endpoint("Headers of a signed playlist or media segment", status=(200, 206, 302, 304), tags=TAGS,
              errors=(403, 404, 416, 503))
    async def head(self, token: str, key: str) -> None:
        await self.get(token, key, include_body=False)

    def _playlist(self, body: bytes) -> None:
        self.set_header("Content-Type", PLAYLIST_TYPE)
        self.set_header("Cache-Control", "private, no-cache")
        self.finish(body)

    def compute_etag(self) -> str | None:
        # Files are immutable per asset version: size and mtime identify them without
        # hashing megabytes on the event loop (Tornado's default).
        path = getattr(self, "absolute_path", None)
        if path is None:
            return None
        stat = os.stat(path)
        return f'"{stat.st_size:x}-{int(stat.st_mtime_ns):x}"'

    def get_content_type(self) -> str:
        suffix = "." + self.absolute_path.rsplit(".", 1)[-1] if self.absolute_path else ""
        return CONTENT_TYPES.get(suffix, "application/octet-stream")

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        try:
            return super().validate_absolute_path(root, absolute_path)
        except Exception:
            raise errors.NotFound("No such media.", code="media_not_found") from None


class UnsignedMediaHandler(MediaFileHandler):
    """A media path without a token: refused, whatever it names."""

    @endpoint("Media without a token (always refused)", status=(), tags=TAGS, errors=(403,))
    async def get(self, rest: str) -> None:
        raise errors.Forbidden("This media link is not valid.", code="media_token_invalid")


def routes(playback: PlaybackService) -> list:
    deps = {"playback": playback}
    return [
        (rf"/playback/(?P<content_id>{ID_PATTERN})/start", StartHandler, deps),
        (rf"/playback/sessions/(?P<session_id>{ID_PATTERN})/heartbeat", HeartbeatHandler, deps),
        (rf"/playback/sessions/(?P<session_id>{ID_PATTERN})", StopHandler, deps),
    ]


def media_routes(playback: PlaybackService) -> list:
    root = playback.local_root or "/nonexistent"
    return [
        (r"/(?P<token>[A-Za-z0-9_-]{16,2048}\.[A-Za-z0-9_-]{16,64})/(?P<key>.+)", MediaHandler,
         {"playback": playback, "root": root}),
        (r"/(?P<rest>.*)", UnsignedMediaHandler),
    ]
