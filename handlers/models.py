"""Shared reply models and field types for the handlers' request and response bodies."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from storage.paging import DEFAULT_LIMIT, MAX_LIMIT

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Otp = Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=32)]


class Body(BaseModel):
    """Request bodies: strict types, so `{"$ne": null}` where a string belongs is a 400."""

    model_config = ConfigDict(strict=True, extra="ignore", str_max_length=10_000)


class PageQuery(Body):
    model_config = ConfigDict(strict=False, extra="ignore")
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=512)


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class Account(BaseModel):
    id: str
    email: str
    display_name: str
    roles: list[str]
    status: str
    email_verified: bool
    mfa: dict[str, Any]
    providers: list[str]
    sign_in_methods: list[str]
    phone: dict[str, Any] | None
    preferences: dict[str, Any]
    created_at: str


class SignedUp(Tokens):
    user: Account
