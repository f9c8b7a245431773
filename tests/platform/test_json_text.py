"""Replies splice pre-encoded parts (title cards, shared home rows) into their JSON text:
the result is the JSON of the whole value, and text that only looks like a placeholder is
left as the client wrote it."""

from __future__ import annotations

import json

from server.core.json_text import Encoded, encode


def test_encoded_parts_are_spliced_at_any_depth() -> None:
    card = Encoded(json.dumps({"id": "t1", "title": "Ünïcode"}, ensure_ascii=False), "t1")
    row = Encoded(encode({"id": "trending", "items": [{"title": card}, {"title": card}]}))
    value = {"rows": [row, {"id": "mine", "items": [card]}], "n": 1}
    expected = {"rows": [{"id": "trending", "items": [{"title": {"id": "t1", "title": "Ünïcode"}}] * 2},
                         {"id": "mine", "items": [{"id": "t1", "title": "Ünïcode"}]}], "n": 1}
    assert json.loads(encode(value)) == expected


def test_text_that_looks_like_a_placeholder_stays_as_written() -> None:
    card = Encoded('{"id":"t1"}', "t1")
    lookalike = "\x00" + "ab" * 6 + ":0\x00"
    assert json.loads(encode({"name": lookalike, "card": card})) == {"name": lookalike, "card": {"id": "t1"}}
