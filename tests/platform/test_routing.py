"""Route groups: each group's rules derive from the group's base handler, so each endpoint
has its group's body limit, XSRF rule and rate limit; a rule in the wrong group is refused
when the app is built."""

from __future__ import annotations

import re

import pytest

from handlers import routing
from handlers.base import StaticHandler
from handlers.platform.health import HealthzHandler
from handlers.routing import ApiHandler, InternalHandler, MediaFileHandler, PageHandler, ProbeHandler, WebhookHandler


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
        elif pattern.startswith("/webhooks/"):
            expected = WebhookHandler
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
    assert seen == {ApiHandler, MediaFileHandler, StaticHandler, ProbeHandler, InternalHandler, PageHandler,
                    WebhookHandler}
    assert WebhookHandler.ip_rate_limited and not WebhookHandler.xsrf_always
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


async def test_every_method_of_every_route_is_declared_or_refused(start_server) -> None:
    """Default deny, on the built app: every method Tornado could dispatch on every route is
    declared with @endpoint, or is answered 405 to an anonymous request, or belongs to a
    handler outside BaseHandler that SELF_GUARDED names with the methods it dispatches."""
    import tornado.web

    from handlers.base import SELF_GUARDED, UNDECLARED_METHODS, BaseHandler

    served = await start_server(NAMELESS_RATE_LIMIT_IP="100000")
    samples = ("0" * 24, "a" * 16 + "." + "b" * 16, "google", "1", "socket.io.min.js", "x", "team:1",
               f"u:{'0' * 24}:device", "in_1")
    checked = declared = refused = 0
    self_guarded = set()
    rules = served.runtime.app.wildcard_router.rules
    for rule in rules:
        target, matcher = rule.target, rule.matcher
        url = _fill(matcher, samples) if issubclass(target, BaseHandler) else None
        for method in tornado.web.RequestHandler.SUPPORTED_METHODS:
            checked += 1
            fn = getattr(target, method.lower(), None)
            if not issubclass(target, BaseHandler):
                names = {cls.__name__ for cls in target.__mro__} & set(SELF_GUARDED)
                assert names, f"{target.__name__} at {matcher.regex.pattern} is neither a BaseHandler nor exempt"
                self_guarded |= names
                if fn is not getattr(tornado.web.RequestHandler, method.lower()):
                    assert method in set().union(*(SELF_GUARDED[n] for n in names)), (target, method)
                continue
            if getattr(fn, "__endpoint__", None) is not None:
                declared += 1
            elif method.lower() not in UNDECLARED_METHODS:
                resp = await served.client.request(method, url)
                # 405; a form page's post without its token is stopped sooner, by the XSRF check
                code = resp.json()["error"]["code"] if resp.status_code >= 400 and method != "HEAD" else ""
                assert resp.status_code == 405 or code == "csrf_failed", (method, url, resp.status_code, resp.text)
                refused += 1
    assert len(rules) >= 80 and checked == len(rules) * 7, (len(rules), checked)
    assert declared >= 90 and refused >= 300 and self_guarded == set(SELF_GUARDED), (declared, refused, self_guarded)


def _fill(matcher, samples) -> str:
    """A path the rule matches, from sample values for its groups."""
    import itertools

    if matcher._group_count is None:  # too complex for Tornado to reverse: fill each named group
        group = re.compile(r"\(\?P<\w+>(?:[^()]|\([^()]*\))*\)")
        url = group.sub(lambda m: next(s for s in samples if re.fullmatch(m.group(0), s)),
                        matcher.regex.pattern.rstrip("$"))
        if matcher.regex.match(url):
            return url
    if not matcher._group_count:  # the pattern as a literal path (it may have an optional part)
        url = matcher.regex.pattern.rstrip("$").replace("\\", "").replace("?", "")
        if matcher.regex.match(url):
            return url
    for combo in itertools.product(samples, repeat=matcher._group_count):
        url = matcher.reverse(*combo)
        if matcher.regex.match(url):
            return url
    raise AssertionError(f"no sample path for {matcher.regex.pattern}")


async def test_an_undeclared_method_is_refused_before_it_runs(server) -> None:
    """A handler method without @endpoint is never served, even on a route with declared ones."""
    from handlers.base import endpoint
    from tests.helpers import assert_error, make_staff

    ran: list[str] = []

    class Leaky(ApiHandler):
        @endpoint("Admins only", permission="users.read")
        def get(self) -> None:
            self.reply({"secret": True})

        def head(self) -> None:
            ran.append("head")
            self.set_status(200)

        def delete(self) -> None:
            ran.append("delete")
            self.reply({"deleted": True})

    server.runtime.app.add_handlers(r".*$", routing.API.rules([(r"/test-leaky", Leaky)]))
    assert_error(await server.client.get("/api/v1/test-leaky"), 401, "not_authenticated")
    assert (await server.client.head("/api/v1/test-leaky")).status_code == 405
    assert_error(await server.client.delete("/api/v1/test-leaky"), 405, "method_not_allowed")
    admin = await make_staff(server, ["admin"])
    assert_error(await server.client.delete("/api/v1/test-leaky", headers=admin["headers"]), 405,
                 "method_not_allowed")
    assert (await server.client.get("/api/v1/test-leaky", headers=admin["headers"])).json() == {"secret": True}
    assert ran == []
    assert (await server.client.head("/api/v1/admin/users")).status_code == 405  # and on the app's own routes
