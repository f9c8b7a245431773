"""Support chat over REST: device keys, the team key, conversations and their ciphertext
history (docs/support-chat-crypto.md). Live messages go over Socket.IO `/support`."""

from __future__ import annotations

from pydantic import Field

from handlers.base import endpoint
from handlers.routing import ApiHandler
from handlers.support.models import (
    Agents,
    AttachmentStored,
    CannedResponse,
    CannedResponses,
    Conversation,
    Conversations,
    DeviceKey,
    DeviceKeys,
    KeyHolders,
    MessageHistory,
    Note,
    Notes,
    TeamKey,
    TeamKeyGrants,
    TeamKeys,
)
from server.core import errors
from server.core.fields import Body, PageQuery, Text
from server.core.ids import new_id
from server.support.chat import SupportService
from server.support.extras import MAX_ATTACHMENT_BYTES, SupportExtras
from server.support.keys import KeyDirectory, device_key_id

TAGS = ("support",)
DEVICE = r"(?P<device_id>[A-Za-z0-9_-]{1,64})"
GRANT = r"(?P<key_number>[0-9]{1,9})/grants/(?P<user_id>[0-9a-f]{24})/(?P<device_id>[A-Za-z0-9_-]{1,64})"
CONVERSATION = r"(?P<conversation_id>[0-9a-f]{24})"


class PublicKeyBody(Body):
    public_key: str = Field(max_length=64)


class GrantBody(Body):
    sealed_private_key: str = Field(max_length=256)


class OpenBody(Body):
    subject: Text
    wrapped_keys: dict[str, str] = Field(min_length=1, max_length=20)


class HistoryQuery(Body):
    model_config = Body.model_config | {"strict": False}
    after_seq: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=500)


class RatingBody(Body):
    rating: int = Field(ge=1, le=5)


class KeysHandler(ApiHandler):
    def initialize(self, keys: KeyDirectory) -> None:
        self.keys = keys


class DeviceKeyHandler(KeysHandler):
    @endpoint("Register this device's X25519 public key (base64)", body=PublicKeyBody, response=DeviceKey, auth=True,
              tags=TAGS)
    async def put(self, device_id: str) -> None:
        body = self.parse(PublicKeyBody)
        self.reply(await self.keys.put_device(self.user.user_id, device_id, body.public_key))

    @endpoint("Forget this device's key: its public key and the team keys sealed to it are deleted", status=204,
              auth=True, tags=TAGS, errors=(404,))
    async def delete(self, device_id: str) -> None:
        await self.keys.forget_device(self.user, device_id)
        self.no_content()


class MyKeysHandler(KeysHandler):
    @endpoint("My devices' public keys", response=DeviceKeys, auth=True, tags=TAGS)
    async def get(self) -> None:
        self.reply({"items": await self.keys.devices(self.user.user_id), "next_cursor": None})


class TeamKeyHandler(KeysHandler):
    @endpoint("The support team's active public key (503 until a supervisor creates one)", response=TeamKey, auth=True,
              tags=TAGS, errors=(503,))
    async def get(self) -> None:
        self.reply(await self.keys.team_key())


class GrantsHandler(KeysHandler):
    @endpoint("The team private keys sealed to my devices (agents and supervisors hold some)", response=TeamKeyGrants,
              auth=True, tags=TAGS)
    async def get(self) -> None:
        self.reply({"items": await self.keys.grants(self.user.user_id), "next_cursor": None})


class AdminTeamKeysHandler(KeysHandler):
    @endpoint("The team's public keys, newest first (none until a supervisor creates one)", response=TeamKeys,
              permission="support.supervise", tags=TAGS)
    async def get(self) -> None:
        self.reply({"items": await self.keys.team_keys(), "next_cursor": None})

    @endpoint("Register a new team public key; it becomes the active one", body=PublicKeyBody, response=TeamKey,
              status=201, permission="support.supervise", tags=TAGS)
    async def post(self) -> None:
        body = self.parse(PublicKeyBody)
        self.reply(await self.keys.add_team_key(self.user, body.public_key), status=201)


class AdminAgentKeysHandler(KeysHandler):
    @endpoint("A user's device public keys, to seal the team key to", response=DeviceKeys,
              permission="support.supervise", tags=TAGS)
    async def get(self, user_id: str) -> None:
        self.reply({"items": await self.keys.devices(user_id), "next_cursor": None})


class AdminHoldersHandler(KeysHandler):
    @endpoint("Who may hold the team key (support agents, super admins) with their device keys and the team keys "
              "sealed to each", response=KeyHolders, permission="support.supervise", tags=TAGS)
    async def get(self) -> None:
        self.reply({"items": await self.keys.holders(), "next_cursor": None})


class AdminGrantHandler(KeysHandler):
    @endpoint("Store the team private key (team key `team:<n>`) sealed to an agent's device (`u:<user>:<device>`)",
              body=GrantBody, status=204,
              permission="support.supervise", tags=TAGS, errors=(404, 422))
    async def put(self, key_number: str, user_id: str, device_id: str) -> None:
        body = self.parse(GrantBody)
        await self.keys.grant(self.user, f"team:{int(key_number)}", device_key_id(user_id, device_id),
                              body.sealed_private_key)
        self.no_content()


class SupportHandler(ApiHandler):
    def initialize(self, support: SupportService) -> None:
        self.support = support


class ConversationsHandler(SupportHandler):
    @endpoint("Open a conversation with support: the subject and the conversation key sealed to the team key and my "
              "devices", body=OpenBody, response=Conversation, status=201, auth=True, tags=TAGS, errors=(503,))
    async def post(self) -> None:
        body = self.parse(OpenBody)
        self.reply(await self.support.open(self.user, body.subject, body.wrapped_keys), status=201)

    @endpoint("My conversations (agents: assigned to me, then the queue)", response=Conversations, auth=True, tags=TAGS)
    async def get(self) -> None:
        self.reply(await self.support.listing(self.user))


class AgentsHandler(SupportHandler):
    @endpoint("Support agents: presence, capacity and open conversations (agents and supervisors)",
              query=PageQuery, response=Agents, auth=True, tags=TAGS, errors=(403,))
    async def get(self) -> None:
        query = self.parse_query(PageQuery)
        self.reply(await self.support.agents(self.user, query.limit, query.cursor))


class ConversationHandler(SupportHandler):
    @endpoint("One conversation, with its sealed keys", response=Conversation, auth=True, tags=TAGS, errors=(404,))
    async def get(self, conversation_id: str) -> None:
        self.reply(await self.support.get(self.user, conversation_id))


class MessagesHandler(SupportHandler):
    @endpoint("Ciphertext history after a sequence number", query=HistoryQuery, response=MessageHistory, auth=True,
              tags=TAGS, errors=(404,))
    async def get(self, conversation_id: str) -> None:
        query = self.parse_query(HistoryQuery)
        self.reply(await self.support.history(self.user, conversation_id, query.after_seq, query.limit))


class WrappedKeysBody(Body):
    wrapped_keys: dict[str, str] = Field(min_length=1, max_length=20)


class KeysOfConversationHandler(SupportHandler):
    @endpoint("Add sealed copies of the conversation key (a new device of the viewer, a new team key)",
              body=WrappedKeysBody, response=Conversation, auth=True, tags=TAGS, errors=(404,))
    async def post(self, conversation_id: str) -> None:
        body = self.parse(WrappedKeysBody)
        self.reply(await self.support.add_keys(self.user, conversation_id, body.wrapped_keys))


class RatingHandler(SupportHandler):
    @endpoint("Rate a resolved conversation (its viewer)", body=RatingBody, response=Conversation, auth=True, tags=TAGS,
              errors=(404, 409))
    async def post(self, conversation_id: str) -> None:
        body = self.parse(RatingBody)
        self.reply(await self.support.rate(self.user, conversation_id, body.rating))


class SealedBody(Body):
    client_id: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_-]*$")
    team_key_id: str = Field(max_length=20)
    sealed: str = Field(max_length=24 * 1024)


class ExtrasHandler(ApiHandler):
    def initialize(self, extras: SupportExtras) -> None:
        self.extras = extras


class NotesHandler(ExtrasHandler):
    @endpoint("Agents' private notes on a conversation, sealed to the team key (never shown to the viewer)",
              response=Notes, auth=True, tags=TAGS, errors=(404,))
    async def get(self, conversation_id: str) -> None:
        self.reply(await self.extras.notes(self.user, conversation_id))

    @endpoint("Add a private note sealed to the team key (agents)", body=SealedBody, response=Note, status=201,
              auth=True, tags=TAGS, errors=(404,))
    async def post(self, conversation_id: str) -> None:
        body = self.parse(SealedBody)
        note = await self.extras.add_note(self.user, conversation_id, body.client_id or new_id(), body.team_key_id,
                                          body.sealed)
        self.reply(note, status=201)


class CannedHandler(ExtrasHandler):
    @endpoint("Canned responses, sealed to the team key (agents)", response=CannedResponses,
              permission="support.handle", tags=TAGS)
    async def get(self) -> None:
        self.reply(await self.extras.canned(self.user))

    @endpoint("Add a canned response sealed to the team key (agents)", body=SealedBody, response=CannedResponse,
              status=201, permission="support.handle", tags=TAGS)
    async def post(self) -> None:
        body = self.parse(SealedBody)
        self.reply(await self.extras.add_canned(self.user, body.team_key_id, body.sealed), status=201)


class CannedItemHandler(ExtrasHandler):
    @endpoint("Delete a canned response (agents)", status=204, permission="support.handle", tags=TAGS,
              errors=(404,))
    async def delete(self, canned_id: str) -> None:
        await self.extras.delete_canned(self.user, canned_id)
        self.no_content()


class AttachmentsHandler(ExtrasHandler):
    max_body_bytes = MAX_ATTACHMENT_BYTES

    @endpoint("Attach a file encrypted on the device with the conversation key (body: nonce then secret box, "
              "application/octet-stream)", response=AttachmentStored, status=201, auth=True, tags=TAGS,
              errors=(404, 413, 415), body_types=("application/octet-stream",))
    async def post(self, conversation_id: str) -> None:
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/octet-stream":
            raise errors.UnsupportedMediaType("Send the encrypted bytes as application/octet-stream.")
        self.reply(await self.extras.attach(self.user, conversation_id, self.body_bytes), status=201)


class AttachmentHandler(ExtrasHandler):
    @endpoint("An attachment's encrypted bytes (members of the conversation only)", auth=True, tags=TAGS, errors=(404,),
              content_type="application/octet-stream")
    async def get(self, conversation_id: str, attachment_id: str) -> None:
        blob = await self.extras.attachment(self.user, conversation_id, attachment_id)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", "attachment")
        self.set_header("Cache-Control", "private, no-store")
        self.finish(blob)


def routes(keys: KeyDirectory, support: SupportService, extras: SupportExtras) -> list:
    k, s, x = {"keys": keys}, {"support": support}, {"extras": extras}
    return [
        (rf"/me/keys/{DEVICE}", DeviceKeyHandler, k),
        (r"/me/keys", MyKeysHandler, k),
        (r"/support/team-key", TeamKeyHandler, k),
        (r"/support/team-keys/grants", GrantsHandler, k),
        (r"/admin/support/team-keys", AdminTeamKeysHandler, k),
        (rf"/admin/support/team-keys/{GRANT}", AdminGrantHandler, k),
        (r"/admin/support/users/(?P<user_id>[0-9a-f]{24})/keys", AdminAgentKeysHandler, k),
        (r"/admin/support/agents", AdminHoldersHandler, k),
        (r"/support/agents", AgentsHandler, s),
        (r"/support/conversations", ConversationsHandler, s),
        (rf"/support/conversations/{CONVERSATION}", ConversationHandler, s),
        (rf"/support/conversations/{CONVERSATION}/messages", MessagesHandler, s),
        (rf"/support/conversations/{CONVERSATION}/rating", RatingHandler, s),
        (rf"/support/conversations/{CONVERSATION}/keys", KeysOfConversationHandler, s),
        (rf"/support/conversations/{CONVERSATION}/notes", NotesHandler, x),
        (rf"/support/conversations/{CONVERSATION}/attachments", AttachmentsHandler, x),
        (rf"/support/conversations/{CONVERSATION}/attachments/(?P<attachment_id>[0-9a-f]{{24}})", AttachmentHandler,
         x),
        (r"/support/canned", CannedHandler, x),
        (r"/support/canned/(?P<canned_id>[0-9a-f]{24})", CannedItemHandler, x),
    ]
