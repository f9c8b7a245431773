"""Search keys for titles: case- and accent-insensitive prefix matching without `$regex`.

At write time every word of a title's names and of its people is normalized (NFKD, accents
stripped, case-folded) and each prefix of it is stored in one array field. A query then
asks for array membership of its normalized words, which an index answers on MongoDB and
which nx-27017 answers correctly, whereas `$regex` against an array matches nothing there
(docs/storage-compat.md, deviation 8).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_PREFIX = 16  # longer query words are cut to this; the few false positives are harmless
MAX_QUERY_WORDS = 6
_WORD = re.compile(r"[^\W_]+")


def normalize(text: str) -> str:
    """Lower-case, accent-free form: "Amélie" and "AMELIE" both become "amelie"."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold()


def words(text: str) -> list[str]:
    return _WORD.findall(normalize(text))


def prefix_keys(texts: Iterable[str]) -> list[str]:
    """Every prefix (1..MAX_PREFIX characters) of every word, de-duplicated and sorted."""
    keys: set[str] = set()
    for text in texts:
        for word in words(text):
            for end in range(1, min(len(word), MAX_PREFIX) + 1):
                keys.add(word[:end])
    return sorted(keys)


def query_keys(query: str) -> list[str]:
    """The keys a query must all match: its words, each a prefix of some stored word."""
    seen: list[str] = []
    for word in words(query)[:MAX_QUERY_WORDS]:
        key = word[:MAX_PREFIX]
        if key not in seen:
            seen.append(key)
    return seen
