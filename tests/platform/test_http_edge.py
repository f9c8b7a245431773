"""The HTTP edge every endpoint shares: error shape, limits, headers, rate limits."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import re
import socket

import pytest

from server.core.logs import request_id_var
from tests.helpers import assert_error, signup

pytestmark = pytest.mark.asyncio


async def test_healthz_and_readyz(server) -> None:
    resp = await server.client.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    resp = await server.client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["checks"] == {"database": "up", "cache": "up", "catalog": "up"}


async def test_unknown_route_is_json_404(server) -> None:
    assert_error(await server.client.get("/api/v1/no/such/thing"), 404, "route_not_found")
    assert_error(await server.client.post("/../../etc/passwd"), 404, "route_not_found")


async def test_unsupported_method_is_json_405(server) -> None:
    assert_error(await server.client.delete("/healthz"), 405, "method_not_allowed")


async def test_security_headers_on_every_response(server) -> None:
    for resp in (await server.client.get("/healthz"), await server.client.get("/nowhere")):
        h = resp.headers
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert "default-src 'none'" in h["content-security-policy"]
        assert h["x-frame-options"] == "DENY"
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "no-referrer"
        assert h["cache-control"] == "no-store"
        assert "strict-transport-security" not in h  # plain HTTP: HSTS only behind TLS
        assert re.fullmatch(r"[0-9a-f]{32}", h["x-request-id"])


async def test_hsts_behind_tls_proxy(start_server) -> None:
    served = await start_server(NAMELESS_TRUST_PROXY="true")
    resp = await served.client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert resp.headers["strict-transport-security"].startswith("max-age=")
    # Without trusting the proxy the header is ignored.
    plain = await start_server()
    resp = await plain.client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in resp.headers


async def test_request_id_is_echoed_when_sane(server) -> None:
    resp = await server.client.get("/healthz", headers={"X-Request-ID": "abc-123_def.456"})
    assert resp.headers["x-request-id"] == "abc-123_def.456"
    resp = await server.client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["x-request-id"])


async def test_cors_only_for_configured_origins(start_server) -> None:
    served = await start_server(NAMELESS_CORS_ORIGINS="https://app.example.com")
    ok = await served.client.get("/healthz", headers={"Origin": "https://app.example.com"})
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    evil = await served.client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    pre = await served.client.options("/healthz", headers={"Origin": "https://app.example.com"})
    assert pre.status_code == 204 and "Authorization" in pre.headers["access-control-allow-headers"]
    assert_error(
        await served.client.options("/healthz", headers={"Origin": "https://evil.example"}),
        403,
        "cors_origin_denied",
    )


async def test_metrics_are_internal(start_server) -> None:
    served = await start_server(NAMELESS_TRUST_PROXY="true", NAMELESS_METRICS_TOKEN="scrape-" + "t" * 20)
    await served.client.get("/healthz")
    resp = await served.client.get("/metrics")
    assert resp.status_code == 200
    assert 'nameless_http_requests_total{method="GET",route="HealthzHandler",status="200"} 1.0' in resp.text
    assert "nameless_http_request_duration_seconds_bucket" in resp.text
    # A request relayed by the proxy from outside is not internal...
    outside = await served.client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert_error(outside, 403, "metrics_forbidden")
    # ...unless it carries the scrape token.
    scraped = await served.client.get(
        "/metrics", headers={"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer scrape-" + "t" * 20}
    )
    assert scraped.status_code == 200
    wrong = await served.client.get(
        "/metrics", headers={"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer nope"}
    )
    assert_error(wrong, 403, "metrics_forbidden")


async def test_metrics_count_each_request_by_route_method_and_status(server) -> None:
    for _ in range(3):
        await server.client.get("/healthz")
    await server.client.get("/api/v1/no/such/thing")
    await server.client.delete("/healthz")
    assert (await server.client.get("/metrics")).status_code == 200
    assert (await server.client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})).status_code == 403
    text = (await server.client.get("/metrics")).text
    for series in (
        'nameless_http_requests_total{method="GET",route="HealthzHandler",status="200"} 3.0',
        'nameless_http_requests_total{method="GET",route="NotFoundHandler",status="404"} 1.0',
        'nameless_http_requests_total{method="DELETE",route="HealthzHandler",status="405"} 1.0',
        'nameless_http_requests_total{method="GET",route="MetricsHandler",status="200"} 1.0',
        'nameless_http_requests_total{method="GET",route="MetricsHandler",status="403"} 1.0',
        'nameless_http_request_duration_seconds_count{method="GET",route="HealthzHandler"} 3.0',
        'nameless_http_request_duration_seconds_count{method="DELETE",route="HealthzHandler"} 1.0',
        'nameless_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="NotFoundHandler"} 1.0',
        "nameless_http_requests_in_flight 1.0",  # the scrape itself
    ):
        assert series in text, series
    assert "nameless_rate_limited_total" in text


async def test_metrics_count_unknown_methods_under_one_label(server) -> None:
    """Tornado takes any token as a method (and answers 405); counting each under its own
    name would let a client grow the metrics without bound."""
    for method in ("BREW", "PROPFIND", "X-" + "a" * 40):
        assert (await server.client.request(method, "/healthz")).status_code == 405
    text = (await server.client.get("/metrics")).text
    assert 'nameless_http_requests_total{method="other",route="HealthzHandler",status="405"} 3.0' in text
    assert "BREW" not in text and "PROPFIND" not in text


async def test_rate_limit_per_ip(any_server_limited) -> None:
    client = any_server_limited.client
    for _ in range(5):
        assert (await client.get("/api/v1/me")).status_code == 401
    err = assert_error(await client.get("/api/v1/me"), 429, "rate_limited")
    resp = await client.get("/api/v1/me")
    retry = int(resp.headers["retry-after"])
    assert 1 <= retry <= 60
    assert err["details"]["retry_after"] >= 1
    assert (await client.get("/healthz")).status_code == 200  # probes are never limited


@pytest.fixture(params=["memory", "redis"])
async def any_server_limited(request, start_server):
    env = {"NAMELESS_RATE_LIMIT_IP": "5"}
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    return await start_server(**env)


async def test_openapi_document(server) -> None:
    resp = await server.client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.")
    assert "/healthz" in doc["paths"] and "/readyz" in doc["paths"]
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]


async def test_malformed_json_is_400(server) -> None:
    resp = await server.client.post("/api/v1/auth/signup", content=b'{"email": ',
                                    headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_json")


async def test_non_object_json_is_400(server) -> None:
    resp = await server.client.post("/api/v1/auth/signup", json=["a", "b"])
    err = assert_error(resp, 400, "validation_failed")
    assert err["details"]["fields"] == {"body": "must be an object"}


async def test_form_body_is_415(server) -> None:
    resp = await server.client.post("/api/v1/auth/signup", data={"email": "x@example.com"})
    assert_error(resp, 415, "unsupported_media_type")


async def test_oversize_body_is_413_before_reading(server) -> None:
    big = b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    resp = await server.client.post("/api/v1/auth/signup", content=big, headers={"Content-Type": "application/json"})
    err = assert_error(resp, 413, "payload_too_large")
    assert err["details"]["max_bytes"] == 1_048_576


async def test_oversize_chunked_body_is_413(server) -> None:
    async def chunks():
        for _ in range(40):
            yield b"x" * 65536

    resp = await server.client.post("/api/v1/auth/signup", content=chunks(),
                                    headers={"Content-Type": "application/json"})
    assert_error(resp, 413, "payload_too_large")


async def test_validation_errors_name_fields(server) -> None:
    resp = await server.client.post("/api/v1/auth/signup", json={"email": "not-an-email", "password": 5})
    err = assert_error(resp, 400, "validation_failed")
    assert set(err["details"]["fields"]) == {"email", "password", "display_name"}
    assert "not-an-email" not in resp.text  # the offending input is never echoed


async def test_internal_errors_never_leak_a_trace(server) -> None:
    # A stopped database is a real failure path: 503 from /readyz, and API calls get a
    # plain error with the request id, no stack trace.
    await server.platform.mongo_client.close()
    ready = await server.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["details"]["down"] == ["database"]
    resp = await server.client.post("/api/v1/auth/signup", json={"email": "a@example.com",
                                                                 "password": "a fine long passphrase",
                                                                 "display_name": "A"})
    assert resp.status_code == 500
    body = resp.json()
    assert body["error"]["code"] == "internal_error"
    assert body["error"]["details"] == {"request_id": resp.headers["x-request-id"]}
    assert "Traceback" not in resp.text and "pymongo" not in resp.text


class _Ids(logging.Handler):
    """The request id each record was logged under."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage(), request_id_var.get()))


async def test_a_failed_requests_log_lines_body_and_header_share_one_request_id(server) -> None:
    """Support finds the log lines of a 500 by the id its body shows: replacing the response
    for the error must not make a new one."""
    ids = _Ids()
    logger, http = logging.getLogger("nameless"), logging.getLogger("nameless.http")
    level = http.level
    logger.addHandler(ids)
    http.setLevel(logging.INFO)  # the access line too
    try:
        await server.platform.mongo_client.close()
        resp = await server.client.post("/api/v1/auth/signup", json={"email": "b@example.com",
                                                                     "password": "a fine long passphrase",
                                                                     "display_name": "B"})
    finally:
        logger.removeHandler(ids)
        http.setLevel(level)
    assert resp.status_code == 500
    shown = resp.json()["error"]["details"]["request_id"]
    assert resp.headers["x-request-id"] == shown
    errors = [rid for message, rid in ids.seen if message in ("dependency unavailable", "unhandled error")]
    requests = [rid for message, rid in ids.seen if message == "request"]
    assert errors == [shown] and requests == [shown], ids.seen


async def test_rate_limit_per_user(start_server) -> None:
    served = await start_server(NAMELESS_RATE_LIMIT_USER="3")
    user = await signup(served.client)
    for _ in range(3):
        assert (await served.client.get("/api/v1/me", headers=user["headers"])).status_code == 200
    resp = await served.client.get("/api/v1/me", headers=user["headers"])
    assert_error(resp, 429, "rate_limited")
    assert int(resp.headers["retry-after"]) >= 1


async def test_refusals_keep_the_connection_alive(start_server) -> None:
    """401, 404, 403 and 429 answers do not drop a keep-alive connection (mobile apps reuse it)."""
    import asyncio

    served = await start_server(NAMELESS_RATE_LIMIT_IP="3")  # media is exempt: its token is the gate
    reader, writer = await asyncio.open_connection("127.0.0.1", served.runtime.port)
    statuses = []
    for path in ("/api/v1/me", "/nowhere", "/media/assets/x/v1/a.ts", "/api/v1/me", "/api/v1/me", "/healthz"):
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
        length = int(lengths[0])
        await reader.readexactly(length)
        statuses.append(int(head.split(b" ")[1]))
    writer.close()
    assert statuses == [401, 404, 403, 401, 429, 200]


async def test_client_address_is_the_hop_the_trusted_proxies_added(start_server) -> None:
    """Two trusted proxies: the client is the entry they appended before their own, for REST,
    the rate limit and sockets alike; what the client wrote further left, or in X-Real-IP, is
    ignored."""
    import socketio

    served = await start_server(NAMELESS_TRUSTED_PROXIES="2", NAMELESS_RATE_LIMIT_IP="4")

    def via_proxies(client: str, spoofed: str) -> dict[str, str]:
        # The client wrote `spoofed`; the outer proxy appended the client, the inner one the outer.
        return {"X-Forwarded-For": f"{spoofed}, {client}, 10.0.0.2", "X-Real-IP": spoofed}

    user = await signup(served.client, **via_proxies("198.51.100.7", "127.0.0.1"))
    sessions = (await served.client.get("/api/v1/me/sessions", headers=user["headers"])).json()
    assert [s["ip"] for s in sessions["items"]] == ["198.51.100.7"]

    # Sockets take the same address: make the session due for its touch, then connect.
    await served.platform.db.sessions.update_many({"user_id": user["user"]["id"]}, {"$set": {"last_used_ms": 0}})
    served.runtime.services.sessions._cache.clear()  # the process kept the check: this edit went around it
    device = socketio.AsyncClient(reconnection=False)
    await device.connect(served.url, auth={"token": user["access_token"]}, transports=["websocket"],
                         headers=via_proxies("198.51.100.8", "127.0.0.1"), wait_timeout=5)
    try:
        doc = await served.platform.db.sessions.find_one({"user_id": user["user"]["id"]})
        assert doc["ip"] == "198.51.100.8"
    finally:
        await device.disconnect()

    # Rotating what the client writes does not escape the per-IP limit...
    statuses = [(await served.client.get("/api/v1/me", headers=via_proxies("203.0.113.5", f"192.0.2.{i}"))).status_code
                for i in range(6)]
    assert statuses[-1] == 429, statuses
    # ...and claiming loopback does not open the metrics.
    assert_error(await served.client.get("/metrics", headers=via_proxies("203.0.113.6", "127.0.0.1")), 403,
                 "metrics_forbidden")


async def test_one_trusted_proxy_ignores_x_real_ip_unless_configured(start_server) -> None:
    served = await start_server(NAMELESS_TRUST_PROXY="true", NAMELESS_RATE_LIMIT_IP="3")
    statuses = [(await served.client.get("/api/v1/me", headers={"X-Forwarded-For": "203.0.113.9",
                                                                "X-Real-IP": f"192.0.2.{i}"})).status_code
                for i in range(5)]
    assert statuses[-1] == 429, statuses
    named = await start_server(NAMELESS_TRUST_PROXY="true", NAMELESS_CLIENT_IP_HEADER="X-Real-IP")
    user = await signup(named.client, **{"X-Forwarded-For": "6.6.6.6, 203.0.113.1", "X-Real-IP": "198.51.100.3"})
    sessions = (await named.client.get("/api/v1/me/sessions", headers=user["headers"])).json()
    assert [s["ip"] for s in sessions["items"]] == ["198.51.100.3"]


async def test_cookies_are_secure_behind_a_tls_public_url(start_server) -> None:
    """Behind a TLS-terminating proxy the request reaching us is plain HTTP; the configured
    https public URL still makes the session and XSRF cookies Secure."""
    from tests.helpers import PASSWORD, make_staff

    served = await start_server(NAMELESS_PUBLIC_URL="https://nameless.example")
    staff = await make_staff(served, ["admin"])
    page = await served.client.get("/login")
    xsrf_cookie = next(c for c in page.headers.get_list("set-cookie") if c.startswith("_xsrf="))
    assert "secure" in xsrf_cookie.lower().split("; "), xsrf_cookie
    token = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    resp = await served.client.post("/login", data={"_xsrf": token, "email": staff["email"], "password": PASSWORD,
                                                    "next": "/admin"},
                                    headers={"Cookie": xsrf_cookie.split(";")[0]})
    assert resp.status_code == 302, resp.text
    session_cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("nameless_session="))
    assert {"secure", "httponly", "samesite=strict"} <= set(session_cookie.lower().split("; ")), session_cookie
    # Without a TLS public URL, plain HTTP keeps cookies usable over HTTP.
    plain = await start_server()
    page = await plain.client.get("/login")
    assert all("secure" not in c.lower().split("; ") for c in page.headers.get_list("set-cookie"))



def _post_all_then_read(port: int, body: bytes) -> tuple[int, bytes, int]:
    """As urllib does: send the whole body, only then read the answer; then use the same
    connection again."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/api/v1/auth/signup", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        status, raw = resp.status, resp.read()
        conn.request("GET", "/healthz")
        return status, raw, conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize("size_mb", [4, 32])
async def test_oversize_body_answer_reaches_a_client_that_sends_it_all_first(server, size_mb) -> None:
    """The 413 goes out before the body is read, and the body is then drained (bounded), so
    a client still sending reads the answer instead of a connection reset."""
    body = b'{"email": "' + b"a" * (size_mb * 1024 * 1024) + b'"}'
    status, raw, next_status = await asyncio.to_thread(_post_all_then_read, server.runtime.port, body)
    assert status == 413
    err = json.loads(raw)["error"]
    assert err["code"] == "payload_too_large" and err["details"]["max_bytes"] == 1_048_576
    assert next_status == 200  # the drained connection is still good


async def test_oversize_body_is_answered_before_it_is_sent(server) -> None:
    """A client that reads while it sends sees the 413 with most of its body unsent."""
    def send_some_then_read() -> bytes:
        with socket.create_connection(("127.0.0.1", server.runtime.port), timeout=10) as sock:
            sock.sendall(b"POST /api/v1/auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 8388608\r\n\r\n" + b"a" * 65536)
            got = b""
            while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
                got += sock.recv(65536)
            return got

    answer = await asyncio.to_thread(send_some_then_read)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"code":"payload_too_large"' in answer


async def test_vary_names_origin_and_accept_encoding_gzip_or_not(server) -> None:
    for accepted in ("identity", "gzip"):
        resp = await server.client.get("/healthz", headers={"Accept-Encoding": accepted})
        assert resp.headers["vary"] == "Origin, Accept-Encoding"
        assert "content-encoding" not in resp.headers  # too short to compress


async def test_new_request_ids_are_distinct_32_hex_digits(server) -> None:
    ids = [(await server.client.get("/healthz")).headers["x-request-id"] for _ in range(300)]  # past one draw
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


async def test_a_forked_child_draws_its_own_request_ids() -> None:
    from handlers.base import _NewIds

    ids = _NewIds()
    ids.next()  # a draw is held when the process forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, ids.next().encode())
        os._exit(0)
    os.close(write)
    await asyncio.to_thread(os.waitpid, pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32 and child != ids.next()
