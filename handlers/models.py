"""Reply models the OpenAPI document describes, shared by several route groups; each
domain's own replies live in `handlers/<domain>/models.py`, request field types in
`server.core.fields`.

Services build replies as plain dicts; these models are their published shape. They
forbid fields they do not name, so the document and the conformance test
(tests/platform/test_openapi.py) catch a reply that grew or lost a field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

Provider = Literal["google", "apple", "facebook"]


class Reply(BaseModel):
    """Base of every reply model: exactly the fields named."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Reply):
    code: str = Field(description="snake_case reason, stable for clients to branch on")
    message: str = Field(description="a human sentence")
    details: dict[str, Any] = Field(description="e.g. `fields` for bad input, `retry_after`, `request_id` on 5xx")


class Error(Reply):
    """The one error shape of every endpoint."""

    error: ErrorDetail


class Page(Reply, Generic[T]):
    """A page of a list; pass `next_cursor` as `?cursor=` for the next one (null: the last page)."""

    items: list[T]
    next_cursor: str | None


class Tokens(Reply):
    access_token: str = Field(description="a short-lived JWT: `Authorization: Bearer <access_token>`")
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds until the access token expires")


class SocialTokens(Tokens):
    created: bool = Field(description="true (and status 201) when this sign-in created the account")


class Mfa(Reply):
    totp: bool
    recovery_codes_left: int


class Phone(Reply):
    number: str
    verified: Literal[True]


class Account(Reply):
    id: str
    email: str
    display_name: str
    roles: list[str]
    status: Literal["active", "suspended"]
    email_verified: bool
    mfa: Mfa
    providers: list[Provider]
    sign_in_methods: list[str] = Field(description="`password` and the linked providers")
    phone: Phone | None
    preferences: dict[str, str | bool | int | None]
    created_at: dt.datetime


class SignedUp(Tokens):
    user: Account


class Accepted(Reply):
    status: Literal["accepted"]
