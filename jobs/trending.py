"""Trending: each title's first-time views over the last few days, from the per-day
counters that history writes, stored on the title so the trending row is one indexed
sort."""

from __future__ import annotations

import datetime as dt

from server.timeutil import from_ms, now, to_ms
from storage.titles import TitleRepository

DEFAULT_DAYS = 7


def recent_days(now_ms: int, days: int) -> list[str]:
    today = from_ms(now_ms).date()
    return [(today - dt.timedelta(days=n)).isoformat() for n in range(days)]


async def run_once(titles: TitleRepository, *, now_ms: int | None = None, days: int = DEFAULT_DAYS) -> int:
    """Recompute every title's trending score; returns how many titles trend."""
    now_ms = now_ms if now_ms is not None else to_ms(now())
    scores = await titles.views_by_title(recent_days(now_ms, days))
    await titles.set_trending(scores)
    return len(scores)
