"""Replies splice pre-encoded parts (title cards, shared home rows) into their JSON text:
the result is the JSON of the whole value, and text that only looks like a placeholder is
left as the client wrote it."""

from __future__ import annotations

import enum
import json

import pytest

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


def test_the_text_is_the_standard_encoders_for_every_kind_of_value() -> None:
    class Level(enum.IntEnum):
        HIGH = 3

    class Name(str):
        pass

    values = [
        {}, [], (), {"a": [], "b": {}}, [0, -1, 2**70, 0.1, -0.0, 1e300, True, False, None],
        {"text": 'quote " back \\ newline \n nul \x00 line \u2028 é 日本'},
        {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")},
        {1: "int key", "b": 2, None: 3, 2.5: 4}, {"b": 2, 1: "a non-text key after a text one"},
        {"enum": Level.HIGH, "sub": Name("x"), "tuple": (1, (2, [3]))},
        [[{"deep": [{"er": {}}]}]], "top-level text", 7, 2.5, None,
    ]
    for value in values:
        assert encode(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False), value


def test_parts_are_spliced_inside_values_the_standard_encoder_handles() -> None:
    card = Encoded('{"id":"t1"}', "t1")
    value = {"rows": {1: card, "x": [float("nan"), card]}, "after": (card,)}
    assert encode(value) == '{"rows":{"1":{"id":"t1"},"x":[NaN,{"id":"t1"}]},"after":[{"id":"t1"}]}'


def test_what_json_cannot_encode_is_refused() -> None:
    with pytest.raises(TypeError):
        encode({"when": object()})


def test_no_reply_is_taken_for_a_circular_one_after_a_spliced_reply_or_across_threads() -> None:
    import threading

    from server.core.json_text import Encoded as Part

    shared = {"rows": [{"card": Part('{"id":"t1"}', "t1")}] * 50, "n": [1, 2, 3]}
    plain = {"rows": [{"id": i, "tags": ["a", "b"]} for i in range(200)]}
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                encode(shared)
                encode(plain)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
