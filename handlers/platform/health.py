"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
from typing import Literal

from pydantic import Field

from handlers.base import endpoint
from handlers.models import ErrorDetail, Reply
from handlers.routing import InternalHandler, ProbeHandler
from server.core import errors
from server.platform.metrics import PROMETHEUS_CONTENT_TYPE


class Health(Reply):
    status: Literal["ok"]


class Readiness(Reply):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description="each dependency: `up`, or `down: <reason>`")
    instance_id: str
    error: ErrorDetail | None = Field(default=None, description="503 only: `dependency_down`, naming what is down")


class HealthzHandler(ProbeHandler):
    @endpoint("The process is alive", response=Health, tags=("operations",))
    def get(self) -> None:
        self.reply({"status": "ok"})


class ReadyzHandler(ProbeHandler):
    @endpoint("Database, cache and queue are reachable (503, with the same body, naming what is down)",
              response=Readiness, status=(200, 503), tags=("operations",))
    async def get(self) -> None:
        checks = await self.platform.check()
        down = sorted(name for name, state in checks.items() if state != "up")
        body = {"status": "ok" if not down else "unavailable", "checks": checks,
                "instance_id": self.platform.instance_id}
        if down:
            body["error"] = {
                "code": "dependency_down",
                "message": f"Not ready: {', '.join(down)} down.",
                "details": {"down": down},
            }
        self.reply(body, 503 if down else 200)


class MetricsHandler(InternalHandler):
    """Internal: scrapers on loopback, or with NAMELESS_METRICS_TOKEN as a bearer token."""

    @endpoint("Prometheus metrics (internal or token)", tags=("operations",), errors=(403,),
              content_type=PROMETHEUS_CONTENT_TYPE)
    def get(self) -> None:
        if not self._allowed():
            raise errors.Forbidden("Metrics are for internal scrapers.", code="metrics_forbidden")
        self.set_header("Content-Type", PROMETHEUS_CONTENT_TYPE)
        self.finish(self.platform.metrics.render())

    def _allowed(self) -> bool:
        token = self.platform.settings.metrics_token
        header = self.request.headers.get("Authorization", "")
        if token is not None and header.startswith("Bearer "):
            return hmac.compare_digest(header[7:].encode(), token.get_secret_value().encode())
        return self.client_ip in ("127.0.0.1", "::1") and "X-Forwarded-For" not in self.request.headers


def routes() -> list:
    return [
        (r"/healthz", HealthzHandler),
        (r"/readyz", ReadyzHandler),
    ]


def internal_routes() -> list:
    return [(r"/metrics", MetricsHandler)]
