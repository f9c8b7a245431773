"""Watch parties: the `/party` namespace, its service and store, and the invite links."""

from __future__ import annotations

from handlers.party import invites
from handlers.routing import API, PAGES
from realtime.party import PartyChannel
from server.app.wiring import Contribution, Wiring
from server.party.service import EVENTS_CHANNEL, PartyService
from storage.party.store import MemoryPartyStore, PartyStore, RedisPartyStore
from storage.state.pubsub import RedisPubSub


def wire(ctx: Wiring) -> Contribution:
    s, platform = ctx.services, ctx.platform
    pubsub = platform.pubsub
    store: PartyStore
    if platform.redis is not None and isinstance(pubsub, RedisPubSub):  # commits publish on the events channel
        store = RedisPartyStore(platform.redis, prefix=f"{ctx.settings.mongo_db}:party:",
                                channel=pubsub.wire_name(EVENTS_CHANNEL))
    else:
        store = MemoryPartyStore(publish=lambda message: pubsub.publish(EVENTS_CHANNEL, message))
    parties = PartyService(store, s.playback, s.catalog, s.accounts, pubsub, platform.rate_limiter,
                           s.gateway.process_id)
    channel = PartyChannel(s.gateway, parties)
    return Contribution(
        services={"parties": parties},
        routes={API: invites.routes(parties), PAGES: invites.page_routes(parties)},
        namespaces=[channel],
        start=[channel.start, parties.start],
        stop=[parties.stop, channel.stop],
    )
