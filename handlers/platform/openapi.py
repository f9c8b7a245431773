"""The OpenAPI document, generated from the routes and their `@endpoint` descriptions.

Each operation gets its parameters (path parameters with the route's own pattern, the
query model `parse_query` validates, the request headers it reads), its request body,
every success status with its schema (none for 204 and redirects), the errors it may
answer with the one shared `Error` schema, the headers responses carry, and its security.
What a route group's policy adds to every endpoint in it (429 from the rate limits, 503
when a dependency is down, 400/413/415 for a JSON body, the cookie session and its CSRF
token) is added here, so a declaration names only what is particular to its endpoint.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import tornado.web
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from handlers.base import EndpointSpec, endpoint
from handlers.models import Error
from handlers.routing import ApiHandler, InternalHandler, PageHandler

_METHODS = ("get", "head", "post", "put", "patch", "delete")
_STATE_CHANGING = {"post", "put", "patch", "delete"}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
JSON = "application/json"
HTML = "text/html"

# Request headers an endpoint may name in `headers=`.
REQUEST_HEADERS: dict[str, dict[str, Any]] = {
    "Upload-Offset": {
        "description": "The byte offset this chunk starts at: the upload's current `offset` (else 409 "
                       "`offset_mismatch`, with the offset to resume from in `details.offset`).",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
}

# Response headers, as components.
HEADERS: dict[str, dict[str, Any]] = {
    "RequestId": {"description": "The request's id (the client's `X-Request-ID` when well-formed); quote it "
                                 "when reporting a problem.", "required": True, "schema": {"type": "string"}},
    "RetryAfter": {"description": "Seconds to wait before trying again.", "required": True,
                   "schema": {"type": "integer", "minimum": 1}},
    "RetryAfterIfDown": {"description": "Seconds to wait, when a dependency is down.",
                         "schema": {"type": "integer", "minimum": 1}},
    "Location": {"description": "Where the redirect leads.", "required": True, "schema": {"type": "string"}},
    "ContentRange": {"description": "The byte range of a partial response.", "required": True,
                     "schema": {"type": "string"}},
}

SUCCESS_TEXT = {200: "OK", 201: "Created", 202: "Accepted", 204: "Done; no content", 206: "Partial content (Range)",
                302: "Redirect", 304: "Not modified since the client's copy (ETag)",
                503: "Not ready: the same report, naming what is down"}
ERROR_TEXT = {
    400: "Bad input: `details.fields` names each bad field (`validation_failed`); also `invalid_json`, "
         "`invalid_cursor`.",
    401: "Not signed in, or the token is invalid, expired or revoked (`not_authenticated`), or the credentials "
         "are wrong.",
    402: "A subscription is required (`subscription_required`).",
    403: "Not allowed: a missing permission (`forbidden`), or a cookie session without its CSRF token "
         "(`csrf_failed`).",
    404: "Not found, or not yours (`*_not_found`).",
    409: "Conflicts with the current state.",
    413: "The body is too large (`payload_too_large`, `details.max_bytes`).",
    415: "The body is not JSON (`unsupported_media_type`).",
    416: "The requested range is outside the file.",
    422: "Valid, but not acceptable in the current state.",
    429: "Rate limited (`rate_limited`, or `too_many_streams` for playback): retry after `Retry-After` seconds.",
    503: "A dependency is down (`database_unavailable`, `cache_unavailable`, with `Retry-After`) or a feature "
         "is not configured (the message names the setting).",
}

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "The access token from sign-in: `Authorization: Bearer <access_token>`."},
    "session": {"type": "apiKey", "in": "cookie", "name": "nameless_session",
                "description": "The staff pages' session cookie (set by `POST /login`)."},
    "xsrfCookie": {"type": "apiKey", "in": "cookie", "name": "_xsrf",
                   "description": "The CSRF cookie every page sets; its value goes back in `X-XSRFToken` (or the "
                                  "`_xsrf` form field) on every state-changing request carried by the cookie "
                                  "session."},
    "xsrfHeader": {"type": "apiKey", "in": "header", "name": "X-XSRFToken",
                   "description": "The `_xsrf` cookie's value."},
    "metricsToken": {"type": "http", "scheme": "bearer",
                     "description": "NAMELESS_METRICS_TOKEN; scrapers on loopback need none."},
}
_XSRF = {"xsrfCookie": [], "xsrfHeader": []}


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


def _path(pattern: str) -> tuple[str, dict[str, str]] | None:
    """The OpenAPI path of a route and each parameter's pattern; None for a pattern that
    is no plain path (a static file route)."""
    groups: dict[str, str] = {}
    path, rest = "", pattern
    while (start := rest.find("(?P<")) >= 0:
        name_end = rest.index(">", start)
        depth, end = 1, name_end + 1
        while depth:  # the group's closing parenthesis (the routes use no escaped ones)
            depth += {"(": 1, ")": -1}.get(rest[end], 0)
            end += 1
        name = rest[start + 4:name_end]
        groups[name] = rest[name_end + 1:end - 1]
        path, rest = path + rest[:start] + "{" + name + "}", rest[end:]
    path = (path + rest).rstrip("$").replace("\\.", ".")
    if any(ch in path for ch in "()[]*+?\\"):
        return None
    return path, groups


def _operation_id(method: str, path: str) -> str:
    """`get /api/v1/titles/{title_id}/episodes` → `getTitlesByTitleIdEpisodes`: unique, and
    stable as long as the path is."""
    words = []
    for segment in path.removeprefix("/api/v1").split("/"):
        if segment.startswith("{"):
            segment = "by_" + segment.strip("{}")
        words += [w for w in re.split(r"[^A-Za-z0-9]+", segment) if w]
    return method + "".join(w[:1].upper() + w[1:] for w in words or ["root"])


def _path_parameter(name: str, body: str) -> dict[str, Any]:
    if re.fullmatch(r"[a-z]+(\|[a-z]+)+", body):
        schema: dict[str, Any] = {"type": "string", "enum": body.split("|")}
    else:
        # the parameter is the decoded value: a percent-encoded spelling the route also
        # accepts on the wire (`|%3[Aa]` for a colon) is no character of it
        value = re.sub(r"\|%[0-9A-Fa-f\[\]]+(?=\))", "", body)
        schema = {"type": "string", "pattern": f"^{value}$"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string: `null` is no value it can have."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if not options or len(options) == len(schema.get("anyOf", [])):
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**options[0], **rest} if len(options) == 1 else {**rest, "anyOf": options}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null({k: v for k, v in prop.items() if k != "title"})
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            param["description"] = prop.pop("description")
        params.append(param)
    return params


def _header(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/headers/{name}"}


def _error(status: int, media: tuple[str, ...] = (JSON,)) -> dict[str, Any]:
    headers = {"X-Request-ID": _header("RequestId")}
    if status == 429:
        headers["Retry-After"] = _header("RetryAfter")
    elif status == 503:
        headers["Retry-After"] = _header("RetryAfterIfDown")
    content = {m: {"schema": _ERROR_REF if m == JSON else {"type": "string"}} for m in media}
    return {"description": ERROR_TEXT.get(status, "Error"), "headers": headers, "content": content}


def _security(handler: type[tornado.web.RequestHandler], method: str, spec: EndpointSpec) -> list[dict[str, Any]]:
    changing = method in _STATE_CHANGING
    if issubclass(handler, PageHandler):
        xsrf = _XSRF if changing else {}
        if not spec.auth:
            return [dict(xsrf)] if changing else []
        return [{"session": [], **xsrf}, {"bearer": [], **xsrf}]
    if spec.auth:
        return [{"bearer": []}, {"session": [], **(_XSRF if changing else {})}]
    if issubclass(handler, InternalHandler):
        return [{"metricsToken": []}, {}]
    return []


def _policy_errors(handler: type[tornado.web.RequestHandler], method: str, spec: EndpointSpec,
                   has_body: bool) -> set[int]:
    """What the route group and the HTTP edge may answer on any endpoint like this one."""
    out: set[int] = set(spec.errors)
    page_get = issubclass(handler, PageHandler) and method in ("get", "head")
    if spec.auth and not page_get:
        out.add(401)  # a page GET sends the visitor to /login instead
    if (spec.auth and method in _STATE_CHANGING) or (issubclass(handler, PageHandler) and method in _STATE_CHANGING):
        out.add(403)  # CSRF
    if getattr(handler, "ip_rate_limited", False) or spec.auth:
        out |= {429, 503}
    if spec.query is not None:
        out.add(400)
    if has_body:
        out.add(413)
    if spec.body is not None and not spec.body_types:
        out |= {400, 415}
    return out


def _success(status: int, spec: EndpointSpec, method: str, response_ref: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": SUCCESS_TEXT.get(status, "OK"),
                           "headers": {"X-Request-ID": _header("RequestId")}}
    if status == 302:
        out["headers"]["Location"] = _header("Location")
    if status == 206:
        out["headers"]["Content-Range"] = _header("ContentRange")
    if status in (204, 302, 304) or method == "head":
        return out
    types = spec.content_type if isinstance(spec.content_type, tuple) else (spec.content_type,)
    content: dict[str, Any] = {}
    for media in types:
        if media == JSON:
            content[media] = {"schema": response_ref or {}}
        elif media.startswith("text/"):
            content[media] = {"schema": {"type": "string"}}
        else:
            content[media] = {"schema": {"type": "string", "format": "binary"}}
    out["content"] = content
    return out


def _request_body(spec: EndpointSpec, body_ref: dict[str, Any] | None) -> dict[str, Any] | None:
    if spec.body is None and not spec.body_types:
        return None
    types = spec.body_types or (JSON,)
    content = {
        media: {"schema": body_ref if body_ref is not None else {"type": "string", "format": "binary"}}
        for media in types
    }
    # a form whose every field is optional (the CSRF token may come as a header) may be empty
    required = spec.body is None or bool(spec.body.model_json_schema().get("required")) or not spec.body_types
    return {"required": required, "content": content}


@functools.lru_cache(maxsize=8)
def cached_openapi(rules: tuple[tuple[str, type[tornado.web.RequestHandler]], ...], version: str) -> dict[str, Any]:
    """The document of a route table, built once: building it takes about half a second."""
    return build_openapi(list(rules), version)


def build_openapi(rules: list[tuple[str, type[tornado.web.RequestHandler]]], version: str) -> dict[str, Any]:
    specs: list[tuple[str, dict[str, str], str, type[tornado.web.RequestHandler], EndpointSpec]] = []
    bodies: set[type[BaseModel]] = set()
    replies: set[type[BaseModel]] = {Error}
    for pattern, handler in rules:
        parsed = _path(pattern)
        if parsed is None:
            continue
        path, groups = parsed
        for method in _METHODS:
            spec = getattr(getattr(handler, method, None), "__endpoint__", None)
            if spec is None:
                continue
            specs.append((path, groups, method, handler, spec))
            if spec.body is not None:
                bodies.add(spec.body)
            if spec.response is not None:
                replies.add(spec.response)
    refs, schema = models_json_schema(
        [(m, "validation") for m in sorted(bodies, key=lambda m: m.__name__)]
        + [(m, "serialization") for m in sorted(replies, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for path, groups, method, handler, spec in specs:
        op: dict[str, Any] = {"summary": spec.summary, "operationId": _operation_id(method, path),
                              "tags": list(spec.tags), "responses": {}}
        params = [_path_parameter(name, groups[name]) for name in re.findall(r"{([a-z_]+)}", path)]
        if spec.query is not None:
            params += _query_parameters(spec.query)
        params += [{"name": name, "in": "header", **REQUEST_HEADERS[name]} for name in spec.headers]
        if params:
            op["parameters"] = params
        op["security"] = _security(handler, method, spec)
        body = _request_body(spec, refs[(spec.body, "validation")] if spec.body is not None else None)
        if body is not None:
            op["requestBody"] = body
        ref = refs[(spec.response, "serialization")] if spec.response is not None else None
        for status in spec.statuses:
            op["responses"][str(status)] = _success(status, spec, method, ref)
        if issubclass(handler, PageHandler) and spec.auth and method == "get":
            op["responses"]["302"] = _success(302, spec, method, None)  # not signed in: to /login
        page = issubclass(handler, PageHandler) and spec.content_type == HTML
        for status in sorted(_policy_errors(handler, method, spec, body is not None)):
            # a page renders its own refusals (a failed sign-in) as the page; the edge's are JSON
            media = (JSON, HTML) if page and status in spec.errors else (JSON,)
            op["responses"][str(status)] = _error(status, media)
        if method == "head":
            for response in op["responses"].values():
                response.pop("content", None)
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Nameless API", "version": version,
                 "description": "Every error has one shape, the `Error` schema. Lists are pages: "
                                "`?limit=` (default 20, max 100) and `?cursor=` from `next_cursor`."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schema.get("$defs", {}).items())),
            "headers": HEADERS,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


class OpenApiHandler(ApiHandler):
    def initialize(self, rules: list[tuple[str, type[tornado.web.RequestHandler]]], version: str) -> None:
        self._rules = rules
        self._version = version

    @endpoint("This OpenAPI document", response=OpenApiDocument, tags=("operations",))
    def get(self) -> None:
        self.reply(cached_openapi(tuple(self._rules), self._version))
