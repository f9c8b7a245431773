"""Which repositories exist: their index specs, created at start."""

from __future__ import annotations

from typing import Any


def index_specs() -> dict[str, list[Any]]:
    specs: dict[str, list[Any]] = {}
    return specs
