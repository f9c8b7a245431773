"""A dependency that is down is the contract's 503, naming it, never a 500.

The edges call `dependency_error` where they map exceptions to the error shape (the HTTP
error handler and the Socket.IO event wrapper), so a database or Redis outage reaches every
client the same way, with a Retry-After, whichever service ran into it.
"""

from __future__ import annotations

from pymongo.errors import ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.core import errors

RETRY_AFTER_SECONDS = 2

# ConnectionFailure covers AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError.
_DEPENDENCIES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str, str], ...] = (
    (ConnectionFailure, "database_unavailable", "The database is unavailable; try again shortly."),
    ((RedisConnectionError, RedisTimeoutError), "cache_unavailable", "The cache is unavailable; try again shortly."),
)


def dependency_error(exc: BaseException | None) -> errors.ServiceUnavailable | None:
    """The 503 for an exception raised by an unreachable dependency, else None."""
    for kinds, code, message in _DEPENDENCIES:
        if isinstance(exc, kinds):
            return errors.ServiceUnavailable(
                message, code=code, details={"retry_after": RETRY_AFTER_SECONDS},
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
    return None
