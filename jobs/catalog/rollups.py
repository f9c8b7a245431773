"""When the catalog's roll-ups run in a serving process: trending every few minutes,
recommendations every quarter of an hour, in a worker process of its own
(`server.catalog.rollups` does the work)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from jobs.periodic import Periodic
from server.catalog import rollups
from server.catalog.rollups import RollupSources

TRENDING_INTERVAL_S = 5 * 60.0
RECOMMENDATIONS_INTERVAL_S = 15 * 60.0


def schedules(sources: RollupSources, claim: Callable[[str, float], Awaitable[bool]] | None = None, *,
              trending_interval_s: float = TRENDING_INTERVAL_S,
              recommendations_interval_s: float = RECOMMENDATIONS_INTERVAL_S) -> list[Periodic]:
    """`claim(name, interval_s)`, when given, grants a tick to one process of the fleet."""

    def claimed(name: str, interval_s: float) -> Callable[[], Awaitable[bool]] | None:
        return None if claim is None else lambda: claim(name, interval_s)

    return [
        Periodic("trending", trending_interval_s, lambda: rollups.trending(sources.titles), initial_delay_s=5.0,
                 claim=claimed("trending", trending_interval_s)),
        Periodic("recommendations", recommendations_interval_s, lambda: rollups.recommend_apart(sources),
                 initial_delay_s=30.0, claim=claimed("recommendations", recommendations_interval_s)),
    ]
