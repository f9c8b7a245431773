"""Route groups: each group's rules derive from the group's base handler, so each endpoint
has its group's body limit, XSRF rule and rate limit; a rule in the wrong group is refused
when the app is built."""

from __future__ import annotations

import pytest

from handlers import routing
from handlers.base import StaticHandler
from handlers.platform.health import HealthzHandler
from handlers.routing import ApiHandler, InternalHandler, MediaFileHandler, PageHandler, ProbeHandler


def test_a_handler_outside_its_groups_base_is_refused() -> None:
    with pytest.raises(TypeError, match="api routes"):
        routing.API.rules([(r"/healthz", HealthzHandler)])
    assert routing.PROBES.rules([(r"/healthz", HealthzHandler)]) == [(r"/healthz", HealthzHandler)]
    assert routing.API.rules([(r"/x", ApiHandler)]) == [(r"/api/v1/x", ApiHandler)]


async def test_every_live_route_has_its_groups_policy(server) -> None:
    rules = [(rule.matcher.regex.pattern, rule.target) for rule in server.runtime.app.wildcard_router.rules]
    seen = set()
    for pattern, target in rules:
        if pattern.startswith("/socket\\.io/"):
            continue
        if pattern.startswith("/api/v1/"):
            expected = ApiHandler
        elif pattern.startswith("/media/"):
            expected = MediaFileHandler
        elif pattern.startswith(("/vendor/", "/static/", "/(favicon", "/(robots")):
            expected = StaticHandler
        elif pattern.rstrip("$") in ("/healthz", "/readyz"):
            expected = ProbeHandler
        elif pattern.rstrip("$") == "/metrics":
            expected = InternalHandler
        else:
            expected = PageHandler
        assert issubclass(target, expected), (pattern, target)
        seen.add(expected)
    assert seen == {ApiHandler, MediaFileHandler, StaticHandler, ProbeHandler, InternalHandler, PageHandler}
    assert not ProbeHandler.ip_rate_limited and not MediaFileHandler.ip_rate_limited
    assert ApiHandler.ip_rate_limited and PageHandler.ip_rate_limited and PageHandler.xsrf_always
    assert InternalHandler.ip_rate_limited  # a metrics token cannot be guessed at speed


async def test_health_probes_are_never_rate_limited_but_metrics_are(start_server) -> None:
    served = await start_server(NAMELESS_RATE_LIMIT_IP="3")
    for _ in range(6):
        assert (await served.client.get("/healthz")).status_code == 200
    guesses = [(await served.client.get("/metrics", headers={"Authorization": "Bearer guess"})).status_code
               for _ in range(4)]
    assert guesses[0] != 429 and guesses[-1] == 429, guesses
