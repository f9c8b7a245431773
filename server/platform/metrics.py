"""Prometheus metrics, in a registry per app so tests and processes never share counters."""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

__all__ = ["PROMETHEUS_CONTENT_TYPE", "Metrics"]


# methods counted under their own name; any other is counted as "other"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class HttpRequestMetrics:
    """The three HTTP series, counted in plain per-process dicts and turned into samples
    only when scraped: every request updates them, and prometheus_client's metric objects
    take a lock and walk the buckets on each update. The exposition is the one those
    objects write (`_total`, buckets, `_count`, `_sum`, `_created`), so scrapers see no
    difference. Only the event loop's thread updates them.
    """

    def __init__(self) -> None:
        self.in_flight = 0
        self._requests: dict[tuple[str, str, int], list[float]] = {}  # key -> [count, created]
        # (route, method) -> [per-bucket counts (the last is +Inf), sum, created]
        self._latency: dict[tuple[str, str], list] = {}
        self._bounds = HTTP_LATENCY_BUCKETS

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in HTTP_METHODS:  # any token is a method to Tornado; keep the label set bounded
            method = "other"
        counted = self._requests.get((route, method, status))
        if counted is None:
            counted = self._requests[(route, method, status)] = [0, time.time()]
        counted[0] += 1
        latency = self._latency.get((route, method))
        if latency is None:
            latency = self._latency[(route, method)] = [[0] * (len(self._bounds) + 1), 0.0, time.time()]
        latency[0][bisect.bisect_left(self._bounds, seconds)] += 1  # le: a value on a bound counts in it
        latency[1] += seconds

    def describe(self) -> list[Metric]:
        """The names, so that the registry refuses another metric of the same name."""
        return [Metric("nameless_http_requests", "", "counter"),
                Metric("nameless_http_request_duration_seconds", "", "histogram"),
                Metric("nameless_http_requests_in_flight", "", "gauge")]

    def collect(self) -> Iterator[Metric]:
        created = prometheus_metrics._use_created  # prometheus_client's switch for its own metrics too
        requests = Metric("nameless_http_requests", "HTTP requests by route, method and status", "counter")
        for (route, method, status), (count, since) in list(self._requests.items()):
            labels = {"route": route, "method": method, "status": str(status)}
            requests.add_sample("nameless_http_requests_total", labels, count)
            if created:
                requests.add_sample("nameless_http_requests_created", labels, since)
        yield requests
        name = "nameless_http_request_duration_seconds"
        latency = Metric(name, "HTTP request latency by route and method", "histogram")
        edges = [floatToGoString(b) for b in self._bounds] + ["+Inf"]
        for (route, method), (buckets, total, since) in list(self._latency.items()):
            labels = {"route": route, "method": method}
            cumulative = 0
            for edge, n in zip(edges, buckets, strict=True):
                cumulative += n
                latency.add_sample(name + "_bucket", {**labels, "le": edge}, cumulative)
            latency.add_sample(name + "_count", labels, cumulative)
            latency.add_sample(name + "_sum", labels, total)
            if created:
                latency.add_sample(name + "_created", labels, since)
        yield latency
        in_flight = Metric("nameless_http_requests_in_flight", "Requests being served", "gauge")
        in_flight.add_sample("nameless_http_requests_in_flight", {}, self.in_flight)
        yield in_flight


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http = HttpRequestMetrics()
        self.registry.register(self.http)
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

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http.observe(route, method, status, seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
