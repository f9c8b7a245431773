"""The HTTP series are counted in plain dicts and rendered at scrape time
(server.platform.metrics): the text a scraper reads is the one prometheus_client's own
Counter, Histogram and Gauge write for the same requests."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from server.platform.metrics import HTTP_LATENCY_BUCKETS, Metrics


def _reference(observed: list[tuple[str, str, int, float]], in_flight: int) -> str:
    registry = CollectorRegistry()
    requests = Counter("nameless_http_requests_total", "HTTP requests by route, method and status",
                       ["route", "method", "status"], registry=registry)
    latency = Histogram("nameless_http_request_duration_seconds", "HTTP request latency by route and method",
                        ["route", "method"], buckets=HTTP_LATENCY_BUCKETS, registry=registry)
    Gauge("nameless_http_requests_in_flight", "Requests being served", registry=registry).set(in_flight)
    for route, method, status, seconds in observed:
        requests.labels(route, method, str(status)).inc()
        latency.labels(route, method).observe(seconds)
    return generate_latest(registry).decode()


def _http_part(text: str) -> str:
    """The HTTP series of a scrape, creation times masked (they are when each series began)."""
    kept = "".join(line for line in text.splitlines(keepends=True) if "nameless_http_" in line)
    return re.sub(r"(_created(?:\{[^}]*\})?) \S+", r"\1 <time>", kept)


def test_the_scrape_is_what_prometheus_client_writes_for_the_same_requests() -> None:
    observed = [
        ("HealthzHandler", "GET", 200, 0.0004), ("HealthzHandler", "GET", 200, 0.001),  # on a bound: counted in it
        ("NotFoundHandler", "GET", 404, 0.0031), ("HealthzHandler", "DELETE", 405, 12.0),  # past the last bound
        ("TitlesHandler", "POST", 201, 0.25), ("HealthzHandler", "GET", 200, 0.7), ("TitlesHandler", "POST", 422, 0.0),
    ]
    metrics = Metrics()
    for route, method, status, seconds in observed:
        metrics.observe_request(route, method, status, seconds)
    metrics.http.in_flight += 2
    assert _http_part(metrics.render().decode()) == _http_part(_reference(observed, in_flight=2))


def test_unknown_methods_are_counted_as_other() -> None:
    metrics = Metrics()
    for method in ("BREW", "PROPFIND", "GET"):
        metrics.observe_request("HealthzHandler", method, 405, 0.001)
    text = metrics.render().decode()
    assert 'nameless_http_requests_total{method="other",route="HealthzHandler",status="405"} 2.0' in text
    assert 'nameless_http_requests_total{method="GET",route="HealthzHandler",status="405"} 1.0' in text
    assert "BREW" not in text
