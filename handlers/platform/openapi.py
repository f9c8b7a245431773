"""The OpenAPI document, generated from the routes and their `@endpoint` descriptions."""

from __future__ import annotations

import re
from typing import Any

import tornado.web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from handlers.base import EndpointSpec, endpoint
from handlers.routing import ApiHandler

_GROUP = re.compile(r"\(\?P<([a-z_]+)>[^)]*\)")
_METHODS = ("get", "post", "put", "patch", "delete")

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def _path(pattern: str) -> str | None:
    path = _GROUP.sub(lambda m: "{" + m.group(1) + "}", pattern).rstrip("$")
    if any(ch in path for ch in "()[]*+?\\"):
        return None
    return path


def build_openapi(rules: list[tuple[str, type[tornado.web.RequestHandler]]], version: str) -> dict[str, Any]:
    specs: list[tuple[str, str, EndpointSpec]] = []
    models: set[type[BaseModel]] = set()
    for pattern, handler in rules:
        path = _path(pattern)
        if path is None:
            continue
        for method in _METHODS:
            spec = getattr(getattr(handler, method, None), "__endpoint__", None)
            if spec is None:
                continue
            specs.append((path, method, spec))
            models.update(m for m in (spec.body, spec.response) if m is not None)
    refs, schema = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    components = dict(schema.get("$defs", {}))
    components["Error"] = ERROR_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for path, method, spec in specs:
        op: dict[str, Any] = {"summary": spec.summary, "tags": list(spec.tags), "responses": {}}
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{([a-z_]+)}", path)
        ]
        if params:
            op["parameters"] = params
        if spec.auth:
            op["security"] = [{"bearer": []}]
        if spec.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(spec.body, "validation")]}},
            }
        ok: dict[str, Any] = {"description": "success"}
        if spec.response is not None:
            ok["content"] = {"application/json": {"schema": refs[(spec.response, "validation")]}}
        op["responses"][str(spec.status)] = ok
        failures = set(spec.errors) | ({400} if spec.body else set()) | ({401} if spec.auth else set()) | {429}
        for status in sorted(failures):
            op["responses"][str(status)] = {
                "description": "error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Nameless API", "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


class OpenApiHandler(ApiHandler):
    def initialize(self, rules: list[tuple[str, type[tornado.web.RequestHandler]]], version: str) -> None:
        self._rules = rules
        self._version = version

    @endpoint("This OpenAPI document", tags=("operations",))
    def get(self) -> None:
        self.reply(build_openapi(self._rules, self._version))
