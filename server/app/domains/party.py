"""Watch parties: the `/party` namespace, its service and store, and the invite links."""

from __future__ import annotations

from handlers.party import invites
from handlers.routing import API, PAGES
from realtime.party import PartyChannel
from server.app.wiring import Contribution, Wiring
from server.party.service import PartyService
from storage.party.store import MemoryPartyStore, PartyStore, RedisPartyStore


def wire(ctx: Wiring) -> Contribution:
    s, platform = ctx.services, ctx.platform
    store: PartyStore = (RedisPartyStore(platform.redis, prefix=f"{ctx.settings.mongo_db}:party:")
                         if platform.redis is not None else MemoryPartyStore())
    parties = PartyService(store, s.playback, s.catalog, s.accounts, platform.pubsub, platform.ephemeral,
                           platform.rate_limiter, s.gateway.process_id)
    channel = PartyChannel(s.gateway, parties)
    return Contribution(
        services={"parties": parties},
        routes={API: invites.routes(parties), PAGES: invites.page_routes(parties)},
        namespaces=[channel],
        start=[channel.start, parties.start],
        stop=[parties.stop, channel.stop],
    )
