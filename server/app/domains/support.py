"""Support chat: the key directory, conversations, the `/support` namespace and the agent console."""

from __future__ import annotations

from handlers.routing import API, PAGES, VENDOR
from handlers.support import console, conversations
from realtime.support import SupportChannel
from server.app.wiring import Contribution, Wiring
from server.support.chat import SupportService
from server.support.extras import SupportExtras
from server.support.keys import KeyDirectory
from storage.identity.users import UserRepository
from storage.support.agents import AgentRepository
from storage.support.conversations import ConversationRepository
from storage.support.extras import ExtrasRepository
from storage.support.keys import KeyRepository


def wire(ctx: Wiring) -> Contribution:
    s, platform = ctx.services, ctx.platform
    keys = ctx.repo(KeyRepository)
    users = ctx.repo(UserRepository)
    directory = KeyDirectory(keys, users, s.audit)
    support = SupportService(ctx.repo(ConversationRepository), keys, ctx.repo(AgentRepository), users,
                             s.notifications, s.gateway, platform.ephemeral, platform.rate_limiter, platform.pubsub,
                             ctx.settings.support_messages_per_minute)
    extras = SupportExtras(support, ctx.repo(ExtrasRepository), keys, s.media_store, s.gateway)
    channel = SupportChannel(s.gateway, support)
    return Contribution(
        services={"support": support, "support_keys": directory, "support_extras": extras},
        routes={API: conversations.routes(directory, support, extras), PAGES: console.routes(),
                VENDOR: console.vendor_routes()},
        namespaces=[channel],
        start=[support.start, channel.start],
        stop=[channel.stop, support.stop],
    )
