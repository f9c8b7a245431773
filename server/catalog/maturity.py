"""Maturity ratings: one ordered scale, so "may this profile see it" is a number comparison
that an index range can answer."""

from __future__ import annotations

RATINGS: tuple[str, ...] = ("all", "7+", "13+", "16+", "18+")
LEVELS: dict[str, int] = {rating: level for level, rating in enumerate(RATINGS)}
KIDS_MAX_RATING = "7+"
KIDS_MAX_LEVEL = LEVELS[KIDS_MAX_RATING]
ADULT_MAX_LEVEL = len(RATINGS) - 1
DEFAULT_RATING = "18+"  # an unrated title is kept away from kids profiles


def level(rating: str) -> int:
    return LEVELS[rating]
