"""Prometheus metrics, in a registry per app so tests and processes never share counters."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["PROMETHEUS_CONTENT_TYPE", "Metrics"]


# methods counted under their own name; any other is counted as "other"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "nameless_http_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "nameless_http_request_duration_seconds",
            "HTTP request latency by route and method",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.http_in_flight = Gauge(
            "nameless_http_requests_in_flight", "Requests being served", registry=self.registry
        )
        self.rate_limited = Counter(
            "nameless_rate_limited_total", "Requests refused by a rate limit", ["scope"],
            registry=self.registry,
        )

        self.socket_connections = Gauge(
            "nameless_socket_connections", "Open Socket.IO connections in this process", ["namespace"],
            registry=self.registry,
        )
        self.socket_refused = Counter(
            "nameless_socket_refused_total", "Socket.IO connections refused", ["namespace", "code"],
            registry=self.registry,
        )
        self.socket_events_in = Counter(
            "nameless_socket_events_in_total", "Socket.IO events received", ["namespace", "event"],
            registry=self.registry,
        )
        self.socket_events_out = Counter(
            "nameless_socket_events_out_total", "Socket.IO events emitted", ["namespace", "event"],
            registry=self.registry,
        )
        self.socket_slow_consumers = Counter(
            "nameless_socket_slow_consumers_total",
            "Sockets closed because their connection stopped draining (write buffer over the limit)",
            registry=self.registry,
        )
        self.socket_emit_latency = Histogram(
            "nameless_socket_emit_seconds", "Time to hand an emit to the manager (local or Redis)",
            ["namespace"], buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
            registry=self.registry,
        )
        self.pubsub_errors = Counter(
            "nameless_pubsub_errors_total", "Redis pub/sub read or decode errors", registry=self.registry
        )
        # The labelled series of each (route, method, status), resolved on first use:
        # `labels()` validates and joins its arguments under a lock on every call.
        self._request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in HTTP_METHODS:  # any token is a method to Tornado; keep the label set bounded
            method = "other"
        key = (route, method, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = (
                self.http_requests.labels(route, method, str(status)), self.http_latency.labels(route, method))
        series[0].inc()
        series[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
