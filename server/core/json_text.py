"""JSON text for replies, with parts encoded once and spliced as they are.

The catalog's title cards are the same bytes in every list that shows them, so the read
model keeps each card as its JSON text (`Encoded`, a third of the memory of the dict) and
replies splice it in instead of encoding the same dict again per request. A reply is
walked once, strings by the standard library's C escaper: calling the C encoder with a
`default` hook per spliced part and substituting placeholders after cost several times as
much per page. Values the walk does not know (subclasses, non-string keys, NaN) are
encoded the standard library's way, hook and placeholders included.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
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
# options builds a new encoder per call, and so does `JSONEncoder.encode` (the C one, in
# `iterencode`). This is that C encoder made once, with the arguments `iterencode` gives
# it for `JSONEncoder(separators=(",", ":"), ensure_ascii=False)`, except the check for
# circular containers (a shared set of ids would make it unsafe across threads; replies
# are trees).
_c_plain = c_make_encoder(None, _plain_default, encode_basestring, None, ":", ",", False, False, True)


def _plain(value: Any) -> str:
    return "".join(_c_plain(value, 0))


def encode(value: Any) -> str:
    """Compact JSON text of `value`, UTF-8 as is, `Encoded` parts spliced in: the same
    text as `json.dumps(value, separators=(",", ":"), ensure_ascii=False)` with each
    part's text in its place. Most replies hold no part: the C encoder writes them whole."""
    try:
        return _plain(value)
    except _HoldsEncoded:
        pass
    out: list[str] = []
    _walk(value, out)
    return "".join(out)


def _walk(value: Any, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(encode_basestring(value))
    elif kind is Encoded:
        out.append(value.text)
    elif kind is dict:
        start, sep = len(out), "{"
        for key, item in value.items():
            if type(key) is not str:  # json.dumps turns such keys into text its own way
                del out[start:]
                out.append(_spliced(value))
                return
            out.append(sep)
            out.append(encode_basestring(key))
            out.append(":")
            _walk(item, out)
            sep = ","
        out.append("{}" if sep == "{" else "}")
    elif kind is list or kind is tuple:
        sep = "["
        for item in value:
            out.append(sep)
            _walk(item, out)
            sep = ","
        out.append("[]" if sep == "[" else "]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is float and math.isfinite(value):
        out.append(float.__repr__(value))
    else:
        out.append(_spliced(value))


def _spliced(value: Any) -> str:
    """The standard library's encoder with a placeholder per `Encoded` part, substituted
    after: for what `_walk` does not handle itself."""
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
