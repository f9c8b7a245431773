"""Reply models the OpenAPI document describes; request field types live in
`server.core.fields`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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
