"""The HTTP edge every endpoint shares, and one base handler per route group.

`BaseHandler` parses and size-limits JSON bodies, validates them with pydantic, maps the
error hierarchy to the contract's error shape, stamps a request id and security headers
on every response, applies CORS and rate limits, and records metrics. Handlers stay thin:
parse, call a service, shape the reply.

The policy attributes (`csp`, `max_body_bytes`, `xsrf_always`, `ip_rate_limited`) are
set by the route groups' base handlers in `handlers.routing`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import tornado.ioloop
import tornado.web
from pydantic import BaseModel
from tornado import httputil
from tornado.util import ObjectDict

from server.core import errors
from server.core.fields import validate
from server.core.json_text import encode
from server.core.logs import AccessLog, request_id_var
from server.core.permissions import Principal
from server.identity.sessions import SESSION_COOKIE, ClientInfo
from server.platform import Platform
from server.platform.outages import dependency_error

log = logging.getLogger("nameless.http")
access_log = AccessLog(log)  # media and push tokens in paths are masked there

M = TypeVar("M", bound=BaseModel)


class Authenticator(Protocol):
    async def authenticate(self, access_token: str, ip: str) -> Principal: ...

    async def authenticate_session(self, session_id: str, ip: str) -> Principal: ...

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
_STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# A body refused on its declared length is answered at once, then read and dropped up to
# these bounds before the connection is reused or closed: a client that sends its whole
# body before reading (urllib) would otherwise meet a reset instead of the answer.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0
# Validated query strings by (model, raw query): a pure function's answers, shared by the
# process's apps; dropped all at once when full.
VALID_QUERIES_KEPT = 4096
_VALID_QUERIES: dict[tuple[type[BaseModel], str], BaseModel] = {}

# What answers without an @endpoint declaration, in one place. BaseHandler refuses every
# other undeclared method (405), except its own CORS preflight; the handlers that do not
# derive from it dispatch only these methods themselves: public files, and the Socket.IO
# transport (which authenticates each connection itself, at connect).
UNDECLARED_METHODS = frozenset({"options"})
SELF_GUARDED: dict[str, frozenset[str]] = {
    "StaticHandler": frozenset({"GET", "HEAD"}),
    "SocketIOHandler": frozenset({"GET", "POST", "OPTIONS"}),
}


@dataclass(frozen=True)
class EndpointSpec:
    """What the OpenAPI document says about one handler method.

    `status` is the success status, or several; `query` is the model `parse_query`
    validates; `content_type` is the success body's media type(s) when it is not JSON;
    `body_types` are the media types of a body that is not JSON (a raw upload chunk, a
    form); `headers` names request headers the method reads (`REQUEST_HEADERS` in
    handlers.platform.openapi).
    """

    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int | tuple[int, ...] = 200
    auth: bool = False
    tags: tuple[str, ...] = ()
    errors: tuple[int, ...] = field(default=())
    permission: str | None = None
    query: type[BaseModel] | None = None
    content_type: str | tuple[str, ...] = "application/json"
    body_types: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()

    @property
    def statuses(self) -> tuple[int, ...]:
        return self.status if isinstance(self.status, tuple) else (self.status,)


def endpoint(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int | tuple[int, ...] = 200,
    auth: bool = False,
    tags: tuple[str, ...] = (),
    errors: tuple[int, ...] = (),
    permission: str | None = None,
    query: type[BaseModel] | None = None,
    content_type: str | tuple[str, ...] = "application/json",
    body_types: tuple[str, ...] = (),
    headers: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe a handler method: its OpenAPI entry and who may call it.

    `auth=True` requires a signed-in user; `permission` also requires that permission
    (see server.core.permissions). BaseHandler.prepare enforces both before the method runs,
    so every endpoint is checked in this one place.
    """
    if permission is not None:
        auth = True
        errors = (*errors, 403)

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        spec = EndpointSpec(summary, body, response, status, auth, tags, errors, permission, query, content_type,
                            body_types, headers)
        fn.__endpoint__ = spec  # type: ignore[attr-defined]
        return fn

    return mark


def header(headers: Mapping[str, str], name: str) -> str | None:
    """`headers.get(name)` for the headers most requests lack: `get` finds a missing one
    through a raised KeyError, `in` does not."""
    return headers[name] if name in headers else None


def declares_body(headers: Mapping[str, str]) -> bool:
    """Whether a request announces a body (a length above zero, or chunks)."""
    # `in` first: a missing header costs `get` a KeyError, and most requests have no body
    if "Content-Length" in headers and headers["Content-Length"] not in ("", "0"):
        return True
    return "Transfer-Encoding" in headers


# The headers every response carries whatever its route, validated (and their names put in
# Tornado's form) once here rather than per response by `set_header`.
_SECURITY_HEADERS = dict(httputil.HTTPHeaders({
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cache-Control": "no-store",
}).get_all())
_HSTS = "max-age=63072000; includeSubDomains"
_SERVER = f"TornadoServer/{tornado.version}"  # what Tornado's `clear` sets
_CORS_EXPOSED = "X-Request-ID, Retry-After"


class _HttpDate:
    """The Date header's text, formatted once per second rather than per response."""

    def __init__(self) -> None:
        self._second, self._text = -1, ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second, self._text = second, httputil.format_timestamp(second)
        return self._text


_DATE = _HttpDate()


class _NewIds:
    """New request ids (32 hex digits from os.urandom, as before), read from one draw of
    `BATCH` ids instead of a system call per request. A forked child draws its own."""

    BATCH = 256

    def __init__(self) -> None:
        self._text, self._at = "", 0
        self._forks_watched = False

    def drop(self) -> None:
        self._text, self._at = "", 0

    def next(self) -> str:
        at = self._at
        if at == len(self._text):
            if not self._forks_watched:  # on first use, not at import
                os.register_at_fork(after_in_child=self.drop)
                self._forks_watched = True
            self._text, at = os.urandom(16 * self.BATCH).hex(), 0
        self._at = at + 32
        return self._text[at:at + 32]


_NEW_IDS = _NewIds()


def _request_id(request: httputil.HTTPServerRequest) -> str:
    """The caller's X-Request-ID when it is sane, else a new one; set as the logs' id."""
    headers = request.headers
    supplied = headers["X-Request-ID"] if "X-Request-ID" in headers else None
    request_id = supplied if supplied and _REQUEST_ID.match(supplied) else _NEW_IDS.next()
    request_id_var.set(request_id)
    return request_id


def stamp_request(handler: tornado.web.RequestHandler, csp: str) -> str:
    """The request id and the security headers every response carries, pages and static
    files included; returns the request id."""
    request_id = _request_id(handler.request)
    headers = handler._headers  # filled directly: every value below is a checked constant or the checked id
    headers["X-Request-ID"] = request_id
    headers["Content-Security-Policy"] = csp
    for name, value in _SECURITY_HEADERS.items():
        headers[name] = value
    if handler.request.protocol == "https":
        headers["Strict-Transport-Security"] = _HSTS
    return request_id


def _headers_of(items: dict[str, str]) -> httputil.HTTPHeaders:
    """`HTTPHeaders` holding `items` (names in Tornado's form, values checked or constant),
    filled in one step instead of one validated set per header."""
    headers = httputil.HTTPHeaders.__new__(httputil.HTTPHeaders)  # its __init__ would only set the two below
    headers._as_list = {name: [value] for name, value in items.items()}
    headers._combined_cache = items
    return headers


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """Every handler of the app derives from this one."""

    csp = API_CSP
    max_body_bytes: int | None = None  # None: the JSON limit from settings
    rate_scope = "api"  # the rate limiter's key space, shared by every group
    ip_rate_limited = True
    xsrf_always = False

    def __init__(self, application: tornado.web.Application, request: httputil.HTTPServerRequest,
                 **kwargs: Any) -> None:
        """Tornado's `RequestHandler.__init__`, with `ui` (the template namespace's
        methods and modules) made on first use: only pages render templates, and it was
        built for every request."""
        self.application = application
        self.request = request
        self._headers_written = False
        self._finished = False
        self._auto_finish = True
        self._prepared_future = None
        self.clear()
        request.connection.set_close_callback(self.on_connection_close)  # type: ignore[union-attr]
        self.initialize(**kwargs)  # type: ignore[call-arg]

    @functools.cached_property
    def ui(self) -> ObjectDict:
        ui = ObjectDict((n, self._ui_method(m)) for n, m in self.application.ui_methods.items())
        ui["_tt_modules"] = ui["modules"] = tornado.web._UIModuleNamespace(self, self.application.ui_modules)
        return ui

    @property
    def platform(self) -> Platform:
        return self.application.settings["platform"]

    # --- lifecycle -----------------------------------------------------------------

    def clear(self) -> None:
        """Tornado's reset of the response (`RequestHandler.clear`), with its default
        headers, the request id, the security headers and CORS made as one dict: it runs
        for every response, and a dozen validated header sets cost more than a small reply."""
        request = self.request
        # Once per request: `send_error` resets the response, and the error's log line was
        # already written under the first id, the one the reply must show.
        if self.__dict__.get("request_id") is None:
            self.request_id = _request_id(request)
        items = {"Server": _SERVER, "Content-Type": "text/html; charset=UTF-8", "Date": _DATE.now(),
                 "X-Request-Id": self.request_id, "Content-Security-Policy": self.csp, **_SECURITY_HEADERS}
        if request.protocol == "https":
            items["Strict-Transport-Security"] = _HSTS
        origin = header(request.headers, "Origin")
        if origin and origin.rstrip("/") in self.platform.settings.cors_origins:
            items["Access-Control-Allow-Origin"] = origin  # a parsed header value: no line breaks
            items["Access-Control-Expose-Headers"] = _CORS_EXPOSED
        items["Vary"] = "Origin"
        self._headers = _headers_of(items)
        self._write_buffer: list[bytes] = []
        self._status_code = 200
        self._reason = "OK"

    def prepare(self) -> Awaitable[None] | None:
        """Book the request in, refuse a body declared too large, then run the checks: the
        per-IP limit, the endpoint's declaration and sign-in (`_authorize`), the route's own
        (`admit`). When none of them has to wait (no per-IP limit, no sign-in, no `admit`
        of the route's own) they run here without a coroutine; Tornado awaits only what
        this returns."""
        settings = self.application.settings
        settings["platform"].metrics.http.in_flight += 1
        self._counted_in_flight = True
        settings["in_flight"].add(self)
        self._body_chunks: list[bytes] = []
        self._body_size = 0
        self._body_too_large = False
        self._draining: object | None = None
        limit = self._body_limit()
        declared = header(self.request.headers, "Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self._answer_before_body(errors.PayloadTooLarge(details={"max_bytes": limit}), int(declared))
            return None
        if self.ip_rate_limited:
            return self._checks()
        try:
            spec = self._declared()
        except errors.ApiError as err:
            self.reject(err)
            return None
        if (spec is not None and (spec.auth or spec.permission)) or type(self).admit is not BaseHandler.admit:
            return self._checks()
        return None

    async def _checks(self) -> None:
        try:
            if self.ip_rate_limited:
                await self.enforce_rate_limit(f"ip:{self.client_ip}", self.platform.settings.rate_limit_ip, 60, "ip")
            await self._authorize()
            await self.admit()
        except errors.ApiError as err:
            self.reject(err)

    async def admit(self) -> None:
        """A route's own checks, after the caller is known; raise an ApiError to refuse.
        Not called for a request already refused on its declared size."""

    def reject(self, err: errors.ApiError) -> None:
        """Refuse the request from `prepare` without dropping a keep-alive connection.

        Tornado closes the connection when a streaming handler answers before the request
        has been read. A request without a body is read as soon as `prepare` returns, so its
        refusal is answered from the method slot instead; with a body, refuse at once. The
        first refusal stands: a later check in a subclass's `prepare` cannot replace it.
        """
        if declares_body(self.request.headers):
            raise err
        slot = (self.request.method or "get").lower()
        if getattr(getattr(self, slot, None), "refusal", None) is not None:
            return

        async def refuse(*args: Any, **kwargs: Any) -> None:
            raise err

        refuse.refusal = err  # type: ignore[attr-defined]
        setattr(self, slot, refuse)

    def _answer_before_body(self, err: errors.ApiError, declared: int) -> None:
        """Send the whole refusal now, then drop the body as it arrives (bounded by
        DRAIN_MAX_BYTES and DRAIN_SECONDS, past which the connection closes). A client
        waiting for `100 Continue` has sent nothing, and a body above the server's
        request limit is never read: those are refused and the connection closed."""
        too_much = min(DRAIN_MAX_BYTES, self.platform.settings.max_request_bytes)
        if self.request.headers.get("Expect", "").lower() == "100-continue" or declared > too_much:
            raise err
        body = self._error_body(err)
        self.set_header("Content-Length", str(len(body)))
        self.write(body)
        self.flush(include_footers=True)  # complete (and under gzip's minimum), so the client can read it now
        self._draining = tornado.ioloop.IOLoop.current().call_later(DRAIN_SECONDS, self._end_drain)
        slot = (self.request.method or "post").lower()

        async def drained(*args: Any, **kwargs: Any) -> None:
            self._end_drain()

        drained.refusal = err  # type: ignore[attr-defined]
        setattr(self, slot, drained)

    def _end_drain(self) -> None:
        """The body is read (the connection stays open), or a bound was reached (it closes)."""
        timer = getattr(self, "_draining", None)
        if timer is None:
            return
        self._draining = None
        tornado.ioloop.IOLoop.current().remove_timeout(timer)
        if not self._finished and not self.request.connection.stream.closed():
            self.finish()

    def _declared(self) -> EndpointSpec | None:
        """The @endpoint declaration of this request's method, None for the undeclared
        methods served anyway; any other undeclared method is refused."""
        self.principal: Principal | None = None
        name = (self.request.method or "").lower()
        spec: EndpointSpec | None = getattr(getattr(self, name, None), "__endpoint__", None)
        if spec is None and name not in UNDECLARED_METHODS:
            raise errors.MethodNotAllowed()  # default deny: a method nobody declared is not served
        return spec

    async def _authorize(self) -> None:
        """The one authentication and permission check of the REST API."""
        spec = self._declared()
        if spec is None or not (spec.auth or spec.permission):
            return
        authenticator: Authenticator = self.application.settings["authenticator"]
        if self.uses_cookie_auth():
            session_id = self.get_signed_cookie(SESSION_COOKIE, max_age_days=1)
            if session_id is None:
                raise errors.Unauthorized()
            self.principal = await authenticator.authenticate_session(session_id.decode(), self.client_ip)
        else:
            header = self.request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise errors.Unauthorized()
            self.principal = await authenticator.authenticate(token.strip(), self.client_ip)
        await self.enforce_rate_limit(
            f"user:{self.principal.user_id}", self.platform.settings.rate_limit_user, 60, "user"
        )
        if spec.permission and not self.principal.can(spec.permission):
            raise errors.Forbidden()

    @property
    def user(self) -> Principal:
        """The signed-in caller; only on endpoints declared with auth."""
        if self.principal is None:
            raise errors.Unauthorized()
        return self.principal

    def client_info(self) -> ClientInfo:
        ua = self.request.headers.get("User-Agent", "")
        return ClientInfo(ip=self.client_ip, user_agent=ua, device=self.request.headers.get("X-Device-Name", ua[:60]))

    def data_received(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if getattr(self, "_draining", None) is not None:
            return  # an answered request: its declared (bounded) length is read and dropped
        if self._body_size > self._body_limit():
            self._body_too_large = True
            self._body_chunks.clear()
        elif not self._body_too_large:
            self._body_chunks.append(chunk)

    def on_finish(self) -> None:
        self._release_in_flight()
        request, route, status = self.request, type(self).__name__, self._status_code
        seconds = request.request_time()
        self.application.settings["platform"].metrics.observe_request(route, request.method or "-", status, seconds)
        access_log.request(request.method, request.path, route, status, round(seconds * 1000, 2),
                           self.client_ip)

    def on_connection_close(self) -> None:
        self._release_in_flight()
        timer = getattr(self, "_draining", None)
        if timer is not None:
            self._draining = None
            tornado.ioloop.IOLoop.current().remove_timeout(timer)

    def _release_in_flight(self) -> None:
        if getattr(self, "_counted_in_flight", False):
            self._counted_in_flight = False
            settings = self.application.settings
            settings["platform"].metrics.http.in_flight -= 1
            settings["in_flight"].discard(self)

    # --- request helpers -----------------------------------------------------------

    def _body_limit(self) -> int:
        return self.max_body_bytes or self.platform.settings.max_json_bytes

    @property
    def client_ip(self) -> str:
        # Resolved once per request by the HTTP server (server.app.forwarded), from the
        # hops the trusted proxies appended; with none configured, headers are ignored.
        return self.request.remote_ip or "-"

    def set_cookie(self, name: str, value: str | bytes, *args: Any, **kwargs: Any) -> None:
        """Every cookie the app sets (session, XSRF) is Secure behind TLS: the request came
        over https, or the configured public URL is https (a proxy terminates TLS)."""
        if self.request.protocol == "https" or self.platform.settings.public_https:
            kwargs["secure"] = True
        super().set_cookie(name, value, *args, **kwargs)

    @property
    def body_bytes(self) -> bytes:
        if self._body_too_large:
            raise errors.PayloadTooLarge(details={"max_bytes": self._body_limit()})
        return b"".join(self._body_chunks)

    def json_body(self) -> Any:
        raw = self.body_bytes
        ctype = self.request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
        if raw and ctype not in ("application/json", "") and not ctype.endswith("+json"):
            raise errors.UnsupportedMediaType()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise errors.BadRequest("The body is not valid JSON.", code="invalid_json") from None

    def parse(self, model: type[M]) -> M:
        """Validate the JSON body against `model`; 400 with field-level messages if not."""
        data = self.json_body()
        if not isinstance(data, dict):
            raise errors.ValidationFailed(
                "The body must be a JSON object.", details={"fields": {"body": "must be an object"}}
            )
        return validate(model, data)

    def parse_query(self, model: type[M]) -> M:
        """The query string validated against `model` (the last value of a repeated name).
        Kept by its raw text, so a query seen before costs a lookup: the answer depends on
        nothing else, and handlers only read it."""
        key = (model, self.request.query)
        found = _VALID_QUERIES.get(key)
        if found is None:
            found = validate(model, {k: self.get_query_argument(k) for k in self.request.query_arguments})
            if len(_VALID_QUERIES) >= VALID_QUERIES_KEPT:
                _VALID_QUERIES.clear()
            _VALID_QUERIES[key] = found
        return found  # type: ignore[return-value]

    async def enforce_rate_limit(self, key: str, limit: int, window: int, scope: str) -> None:
        decision = await self.platform.rate_limiter.hit(f"{self.rate_scope}:{key}", limit, window)
        if not decision.allowed:
            self.platform.metrics.rate_limited.labels(scope).inc()
            raise errors.RateLimited(decision.retry_after)

    # --- replies -------------------------------------------------------------------

    def reply(self, data: Any, status: int = 200) -> None:
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        if status != self._status_code or self._reason != "OK":
            self.set_status(status)
        self._headers["Content-Type"] = "application/json; charset=utf-8"  # a constant: no check per reply
        self.finish(encode(data))

    def no_content(self) -> None:
        self.set_status(204)
        self.finish()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, errors.ApiError):
            err = exc
        elif isinstance(exc, tornado.web.HTTPError):
            err = _framework_error(exc)
        else:
            err = dependency_error(exc) or (errors.from_status(status_code) if status_code < 500 else errors.ApiError())
        self.finish(self._error_body(err))

    def _error_body(self, err: errors.ApiError) -> bytes:
        """Status and headers of `err` set on this response; its body in the contract's shape."""
        for name, value in err.headers.items():
            self.set_header(name, value)
        body = err.body()
        if err.status >= 500:
            body["error"]["details"] = {"request_id": self.request_id}
        self.set_status(err.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        return json.dumps(body, separators=(",", ":")).encode()

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, errors.ApiError):
            if value.status >= 500:
                log.warning("service error", extra={"code": value.code})
            return
        if isinstance(value, tornado.web.HTTPError):
            return
        if dependency_error(value) is not None:
            log.warning("dependency unavailable", extra={"error": type(value).__name__})
            return
        log.error("unhandled error", exc_info=(typ, value, tb))

    # --- CORS preflight and XSRF -----------------------------------------------------

    def options(self, *args: Any, **kwargs: Any) -> None:
        origin = self.request.headers.get("Origin", "").rstrip("/")
        if origin not in self.platform.settings.cors_origins:
            raise errors.Forbidden("This origin is not allowed.", code="cors_origin_denied")
        self.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
        self.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-ID")
        self.set_header("Access-Control-Max-Age", "600")
        self.no_content()

    def uses_cookie_auth(self) -> bool:
        """Whether this request would be authenticated by the staff session cookie."""
        return self.get_cookie(SESSION_COOKIE) is not None and "Authorization" not in self.request.headers

    def check_xsrf_cookie(self) -> None:
        # Bearer-token requests cannot be forged cross-site; cookie sessions and forms can.
        if self.request.method in _STATE_CHANGING and (self.xsrf_always or self.uses_cookie_auth()):
            super().check_xsrf_cookie()



def _framework_error(exc: tornado.web.HTTPError) -> errors.ApiError:
    """Errors Tornado raises itself (405, XSRF failures, bad requests) in our shape."""
    if exc.status_code == 403 and "xsrf" in (exc.log_message or "").lower():
        return errors.Forbidden("The CSRF token is missing or wrong.", code="csrf_failed")
    return errors.from_status(exc.status_code)


VENDOR = Path(__file__).resolve().parents[1] / "web" / "node_modules"  # browser libraries from npm


class StaticHandler(tornado.web.StaticFileHandler):
    """Static assets with the same security headers as everything else."""

    def set_default_headers(self) -> None:
        stamp_request(self, PAGE_CSP)
        self.clear_header("Cache-Control")
