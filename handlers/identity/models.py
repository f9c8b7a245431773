"""What the account endpoints reply, beyond the shared `Account` and token models."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from handlers.models import Page, Phone, Reply


class Session(Reply):
    id: str
    device: str
    user_agent: str
    ip: str
    method: str = Field(description="how the session signed in: password or a provider")
    created_at: dt.datetime
    last_used_at: dt.datetime
    current: bool = Field(description="the session making this request")


class Sessions(Page[Session]):
    pass


class PhoneVerified(Reply):
    phone: Phone


class TotpSetup(Reply):
    secret: str
    otpauth_uri: str


class TotpEnabled(Reply):
    enabled: bool
    recovery_codes: list[str] = Field(description="shown only once")


class Profile(Reply):
    id: str
    name: str
    kids: bool
    avatar: str | None
    language: str | None
    created_at: dt.datetime


class Profiles(Page[Profile]):
    pass
