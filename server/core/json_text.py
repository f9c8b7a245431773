"""JSON text for replies, with parts encoded once and spliced as they are.

The catalog's title cards are the same bytes in every list that shows them, so the read
model keeps each card as its JSON text (`Encoded`, a third of the memory of the dict) and
replies splice it in instead of encoding the same dict again per request. Everything else
is encoded by the standard library's C encoder.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any


class Encoded:
    """A JSON value already encoded; `id` is kept beside it for the readers that need it."""

    __slots__ = ("id", "text")

    def __init__(self, text: str, id: str = "") -> None:
        self.text = text
        self.id = id

    def value(self) -> Any:
        return json.loads(self.text)

    def __getitem__(self, key: str) -> Any:
        """Card-like access (`card["id"]`) for the few readers that look inside."""
        return self.id if key == "id" and self.id else self.value()[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Encoded) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class _HoldsEncoded(Exception):
    """`value` holds an `Encoded` part: the plain encoder stops and `encode` splices."""


def _plain_default(obj: Any) -> Any:
    if isinstance(obj, Encoded):
        raise _HoldsEncoded
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# One encoder for every reply without `Encoded` parts (most of them): `json.dumps` with
# options builds a new encoder per call.
_plain = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_plain_default).encode


def encode(value: Any) -> str:
    """Compact JSON text of `value`, UTF-8 as is, `Encoded` parts spliced in."""
    try:
        return _plain(value)
    except _HoldsEncoded:
        pass
    parts: list[str] = []
    mark = ""

    def default(obj: Any) -> Any:
        nonlocal mark
        if isinstance(obj, Encoded):
            if not mark:
                mark = secrets.token_hex(6)
            parts.append(obj.text)
            return f"\x00{mark}:{len(parts) - 1}\x00"
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=default)
    if not parts:
        return text
    # One compiled pattern for every call (a pattern naming this call's mark would be compiled
    # per reply); a placeholder counts only with this call's mark, so text that merely looks
    # like one stays as it is.
    return _PLACEHOLDER.sub(lambda m: parts[int(m.group(2))] if m.group(1) == mark else m.group(0), text)


_PLACEHOLDER = re.compile(r'"\\u0000([0-9a-f]{12}):(\d+)\\u0000"')
