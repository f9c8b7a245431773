"""Time in one place: now, epoch milliseconds, and the ISO 8601 UTC strings of REST bodies.

Storage rule (docs/storage-compat.md): a field written by an update holds epoch
milliseconds (`*_ms`); Date fields are written only at insert (nx-27017 turns a Date
written by `$set` into a string).
"""

from __future__ import annotations

import datetime as dt
import functools


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def to_ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def from_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


def iso(value: dt.datetime | int | None) -> str | None:
    """ISO 8601 UTC with a Z, from a stored Date or epoch milliseconds."""
    if value is None:
        return None
    if isinstance(value, int):
        return _iso_ms(value)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=65_536)
def _iso_ms(value: int) -> str:
    """Kept: the same stored times (last watched, added, computed) are written in reply
    after reply, and a conversion costs more than the rest of a history row."""
    return from_ms(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")
