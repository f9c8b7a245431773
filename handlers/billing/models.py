"""What the plan and subscription endpoints reply."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from handlers.models import Page, Reply


class Plan(Reply):
    id: str
    name: str
    price_cents: int
    currency: str
    interval: str
    max_height: int = Field(description="the highest rendition the plan plays")
    streams: int = Field(description="simultaneous streams")


class Plans(Page[Plan]):
    pass


class AdminPlan(Plan):
    active: bool


class Subscription(Reply):
    status: Literal["none", "trialing", "active", "past_due", "canceled"]
    plan: Plan | None
    current_period_end: dt.datetime | None
    cancel_at_period_end: bool
    source: Literal["stripe", "complimentary"] | None
