"""Quiet hours: a daily window in the user's own time zone during which non-urgent pushes
are held (queued with a later due time), not dropped."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator

from server.core.clock import to_ms
from server.core.fields import Body

HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class QuietHours(Body):
    start: str
    end: str
    time_zone: str

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not HHMM.match(value):
            raise ValueError("must be HH:MM (24-hour)")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Europe/Paris") from None
        return value


def _at(day: dt.date, hhmm: str, zone: ZoneInfo) -> dt.datetime:
    hours, minutes = (int(p) for p in hhmm.split(":"))
    return dt.datetime(day.year, day.month, day.day, hours, minutes, tzinfo=zone)


def held_until_ms(quiet: dict[str, Any] | None, at: dt.datetime) -> int | None:
    """When the quiet window containing `at` ends (epoch ms), or None outside any window."""
    if not quiet or quiet.get("start") == quiet.get("end"):
        return None
    zone = ZoneInfo(quiet["time_zone"])
    local = at.astimezone(zone)
    for day in (local.date() - dt.timedelta(days=1), local.date()):
        start = _at(day, quiet["start"], zone)
        end_day = day if quiet["end"] > quiet["start"] else day + dt.timedelta(days=1)
        end = _at(end_day, quiet["end"], zone)
        if start <= local < end:
            return to_ms(end.astimezone(dt.UTC))
    return None
