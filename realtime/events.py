"""The shared machinery of every Socket.IO event: rate limit, payload validation,
permission check and the contract's acknowledgement shape, in one decorator."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from server.core import errors
from server.core.fields import validate
from server.core.permissions import Principal
from server.platform.outages import dependency_error

log = logging.getLogger("nameless.realtime")

Ack = dict[str, Any]


def ok(**data: Any) -> Ack:
    return {"ok": True, **data}


def failure(err: errors.ApiError) -> Ack:
    body: Ack = {"code": err.code, "message": err.message}
    if err.details:
        body["details"] = err.details
    return {"ok": False, "error": body}


class TokenBucket:
    """Per-socket event budget: `rate` events a second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def event(
    name: str,
    model: type[BaseModel] | None = None,
    *,
    permission: str | None = None,
) -> Callable[[Callable[..., Awaitable[Ack]]], Callable[..., Awaitable[Ack]]]:
    """Wrap a namespace handler `(self, sid, principal, payload) -> ack dict`.

    The namespace must provide `gateway` (for the principal, rate limits and metrics).
    Errors never escape to the client as anything but the ack error shape.
    """

    def wrap(fn: Callable[..., Awaitable[Ack]]) -> Callable[..., Awaitable[Ack]]:
        @functools.wraps(fn)
        async def handler(self: Any, sid: str, data: Any = None) -> Ack:
            gateway = self.gateway
            gateway.metrics.socket_events_in.labels(self.namespace, name).inc()
            try:
                principal: Principal | None = gateway.connections.principal(self.namespace, sid)
                if principal is None:
                    raise errors.Unauthorized("Connect again.", code="not_connected")
                if not gateway.connections.allow_event(self.namespace, sid):
                    raise errors.RateLimited(1, "Too many events; slow down.")
                if permission is not None and not principal.can(permission):
                    raise errors.Forbidden()
                payload: Any = data if data is not None else {}
                if model is not None:
                    if not isinstance(payload, dict):
                        raise errors.ValidationFailed(details={"fields": {"payload": "must be an object"}})
                    payload = validate(model, payload)
                return await fn(self, sid, principal, payload)
            except errors.ApiError as err:
                return failure(err)
            except Exception as exc:
                unavailable = dependency_error(exc)
                if unavailable is not None:
                    return failure(unavailable)
                log.exception("socket event failed", extra={"event": name, "namespace": self.namespace})
                return failure(errors.ApiError())

        handler.is_event = True  # type: ignore[attr-defined]
        return handler

    return wrap
