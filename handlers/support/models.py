"""What the support chat's REST endpoints reply: keys, conversations, ciphertext."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from handlers.models import Page, Reply


class DeviceKey(Reply):
    key_id: str = Field(description="`u:<user id>:<device id>`: the recipient id in `wrapped_keys`")
    device_id: str
    public_key: str = Field(description="X25519, base64")


class DeviceKeys(Page[DeviceKey]):
    pass


class TeamKey(Reply):
    key_id: str = Field(description="`team:<n>`")
    public_key: str
    active: bool


class TeamKeys(Page[TeamKey]):
    pass


class HolderDevice(DeviceKey):
    team_key_ids: list[str] = Field(description="the team keys sealed to this device (`team:<n>`)")


class KeyHolder(Reply):
    user_id: str
    display_name: str
    email: str
    devices: list[HolderDevice]


class KeyHolders(Page[KeyHolder]):
    pass


class TeamKeyGrant(Reply):
    team_key_id: str
    device_key_id: str
    sealed_private_key: str


class TeamKeyGrants(Page[TeamKeyGrant]):
    pass


class Conversation(Reply):
    id: str
    viewer_id: str
    subject: str
    status: Literal["open", "pending", "resolved"]
    assignee_id: str | None
    queued: bool
    last_seq: int
    wrapped_keys: dict[str, str] = Field(description="recipient key id → the conversation key sealed to it")
    team_key_id: str
    read: dict[str, int] = Field(description="user id → the last sequence number they read")
    unread: int | None
    rating: int | None
    created_ms: int
    updated_ms: int


class Conversations(Page[Conversation]):
    pass


class Message(Reply):
    conversation_id: str
    message_id: str
    seq: int
    sender_id: str
    nonce: str
    ciphertext: str
    created_ms: int


class MessageHistory(Reply):
    items: list[Message]
    last_seq: int = Field(description="ask again with after_seq set to this")
    more: bool


class Note(Reply):
    id: str
    conversation_id: str
    author_id: str
    team_key_id: str
    sealed: str
    created_ms: int


class Notes(Page[Note]):
    pass


class CannedResponse(Reply):
    id: str
    team_key_id: str
    sealed: str
    created_by: str
    created_ms: int


class CannedResponses(Page[CannedResponse]):
    pass


class AttachmentStored(Reply):
    attachment_id: str
    size: int


class Agent(Reply):
    user_id: str
    display_name: str
    available: bool = Field(description="takes new conversations")
    capacity: int = Field(description="conversations at once")
    online: bool = Field(description="a console of theirs is connected")
    open: int = Field(description="unresolved conversations assigned to them")


class Agents(Page[Agent]):
    pass
