"""Every process's in-memory copy of the catalog, answering what viewers browse.

Catalog metadata is small and read far more than written, so each process holds all titles
(cards, the fields visibility and sorting need, facet postings and search words) and
answers browse, search, sorts, keyset cursors and the shared home rows without the store
(Netflix's Hollow works this way). The store stays the source of truth: episodes and
playback still read it, and title details are read from it (then kept until the title changes).

Freshness: the model is built at start in `_id` chunks (readiness names `catalog` and viewer
reads answer 503 `catalog_loading` until it is); every catalog write calls `changed(ids)`,
which reloads those titles here before the writer replies and tells the other processes
over pub/sub (`catalog.changes`), which reload them too; a poll every `poll_s` reads the
titles whose `updated_ms` moved (with an overlap for clock skew and late commits), which
also carries the numbers viewers' activity moves (popularity, ratings, trending), and a
full rebuild every `rebuild_s` drops anything a lost message left behind. A reader is at
worst `poll_s` plus one poll's duration behind another process's write, when the pub/sub
message is lost. Publishing at `publish_at` and availability windows are evaluated against
the clock on every read, so a window that opens or closes is exact.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import secrets
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from server.catalog.cards import title_card
from server.core import errors
from server.core.clock import now, to_ms
from server.core.json_text import Encoded
from server.core.paging import MAX_LIMIT, PageResult, decode_cursor, encode_cursor
from storage.catalog.titles import FOREVER_MS, SORTS, TitleRepository
from storage.state.pubsub import PubSub

log = logging.getLogger(__name__)

CHANGES_CHANNEL = "catalog.changes"  # {"ids": [...], "origin": "<model token>"}
OVERLAP_MS = 10_000  # the poll re-reads this much before its watermark: writers' clocks and late commits
CHUNK = 2000
RETRY_S = 0.2  # a failed chunk is read again after this, doubling up to RETRY_MAX_S
RETRY_MAX_S = 5.0
FILTERED_ORDERS = 256  # filter and search combinations whose sorted titles are kept until the next change
FILTERED_SHARE = 4  # ... holding at most this many times the catalog's titles between them


@dataclass(slots=True)
class Entry:
    """One title as the model holds it: what visibility, filters and sorts need, and its card."""

    id: str
    kind: str
    status: str
    publish_at_ms: int
    window_start_ms: int
    window_end_ms: int
    level: int
    facets: tuple[str, ...]  # "type:movie", "genre:drama", "category:x", "language:en"
    words: tuple[str, ...]  # the longest search keys: every key is a prefix of one of them
    popularity: float
    published_ms: int
    rating_avg: float
    trending_score: float
    card: Encoded

    def visible(self, now_ms: int, max_level: int) -> bool:
        if self.status != "published" and not (self.status == "scheduled" and 0 < self.publish_at_ms <= now_ms):
            return False
        return self.window_start_ms <= now_ms < self.window_end_ms and self.level <= max_level

    def announced(self, now_ms: int, max_level: int) -> bool:
        """Scheduled for later and within the profile's ceiling: shown as coming soon and
        listable, never playable. A title whose window closes before its release is not."""
        return (self.status == "scheduled" and self.publish_at_ms > now_ms and self.level <= max_level
                and self.publish_at_ms < self.window_end_ms)

    def value(self, field: str) -> Any:
        return getattr(self, field)


def _num(doc: dict[str, Any], field: str) -> float:
    value = doc.get(field)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _words(keys: Iterable[str]) -> tuple[str, ...]:
    """The keys that are no other key's prefix (sorted, a key's extensions follow it)."""
    ordered = sorted(set(keys))
    return tuple(sys.intern(k) for i, k in enumerate(ordered)
                 if i + 1 == len(ordered) or not ordered[i + 1].startswith(k))


def _card(doc: dict[str, Any]) -> Encoded:
    """The card as the JSON text every reply splices in (server/core/json_text.py)."""
    card = title_card(doc)
    return Encoded(json.dumps(card, separators=(",", ":"), ensure_ascii=False), card["id"])


def entry_of(doc: dict[str, Any]) -> Entry:
    status = str(doc.get("status") or "draft")
    publish_at = int(doc.get("publish_at_ms") or 0)
    published = int(doc.get("published_ms") or 0)
    if status == "scheduled" and not published:
        published = publish_at  # a due title sorts as new from its publish time
    facets = [f"type:{doc.get('type')}"]
    for field, prefix in (("genres", "genre"), ("categories", "category"), ("languages", "language")):
        facets += [f"{prefix}:{v}" for v in doc.get(field) or ()]
    facets = [sys.intern(f) for f in facets]
    card = _card(doc)
    return Entry(
        id=card.id, kind=sys.intern(str(doc.get("type"))), status=sys.intern(status), publish_at_ms=publish_at,
        window_start_ms=int(doc.get("window_start_ms") or 0),
        window_end_ms=int(doc.get("window_end_ms") if doc.get("window_end_ms") is not None else FOREVER_MS),
        level=int(doc.get("maturity_level") if doc.get("maturity_level") is not None else 10**6),
        facets=tuple(facets), words=_words(doc.get("search_keys") or ()),
        popularity=_num(doc, "popularity"), published_ms=published, rating_avg=_num(doc, "rating_avg"),
        trending_score=_num(doc, "trending_score"), card=card,
    )


class _Index:
    """Titles by id, facet postings, search words and the sort orders (built lazily)."""

    def __init__(self) -> None:
        self.titles: dict[str, Entry] = {}
        self.postings: dict[str, set[str]] = {}
        # A word most titles do not share (a name, a number) holds its one id, not a set; a
        # built index holds the shared ones as tuples (a set costs 4-8 times the memory, and
        # a search copies them into one set anyway), made sets again when a change edits them.
        self.word_ids: dict[str, str | set[str] | tuple[str, ...]] = {}
        self._words: list[str] | None = None
        self._orders: dict[str, list[Entry]] = {}
        self._filtered: OrderedDict[tuple[tuple[str, ...], str], list[Entry]] = OrderedDict()
        self._filtered_size = 0

    def put(self, entry: Entry) -> None:
        old = self.titles.get(entry.id)
        if old is not None and old.facets == entry.facets and old.words == entry.words:
            self.titles[entry.id] = entry  # popularity, trending, ratings: no posting moves
            self._changed()
            return
        self.drop(entry.id)
        self.titles[entry.id] = entry
        for facet in entry.facets:
            self.postings.setdefault(facet, set()).add(entry.id)
        for word in entry.words:
            ids = self._editable(word)
            if ids is None:
                self.word_ids[word] = entry.id
                self._words = None
            elif isinstance(ids, str):
                self.word_ids[word] = {ids, entry.id}
            else:
                ids.add(entry.id)
        self._changed()

    def compact(self) -> None:
        """Shared words' ids as tuples: once, when a build is complete."""
        for word, ids in self.word_ids.items():
            if isinstance(ids, set):
                self.word_ids[word] = tuple(ids)

    def _editable(self, word: str) -> str | set[str] | None:
        """The word's ids, a compacted tuple made a set again so that a change can edit it."""
        ids = self.word_ids.get(word)
        if isinstance(ids, tuple):
            ids = self.word_ids[word] = set(ids)
        return ids

    def _changed(self) -> None:
        self._orders.clear()
        self._filtered.clear()
        self._filtered_size = 0

    def drop(self, title_id: str) -> None:
        old = self.titles.pop(title_id, None)
        if old is None:
            return
        for facet in old.facets:
            self.postings.get(facet, set()).discard(title_id)
        for word in old.words:
            ids = self._editable(word)
            if isinstance(ids, set):
                ids.discard(title_id)
                if len(ids) == 1:
                    self.word_ids[word] = next(iter(ids))
            elif ids is not None:
                del self.word_ids[word]
                self._words = None
        self._changed()

    def with_prefix(self, key: str) -> set[str]:
        if self._words is None:
            self._words = sorted(self.word_ids)
        words = self._words
        found: set[str] = set()
        for i in range(bisect.bisect_left(words, key), len(words)):
            if not words[i].startswith(key):
                break
            ids = self.word_ids[words[i]]
            if isinstance(ids, str):
                found.add(ids)
            else:
                found.update(ids)
        return found

    def order(self, field: str) -> list[Entry]:
        """All titles ascending by (field, id): pages walk it backwards."""
        entries = self._orders.get(field)
        if entries is None:
            entries = self._orders[field] = sorted(self.titles.values(), key=lambda e: (e.value(field), e.id))
        return entries

    def filtered(self, facets: tuple[str, ...], keys: tuple[str, ...], field: str) -> list[Entry]:
        """The titles with every one of `facets` and a word starting with each of `keys`, in
        `order(field)`: computed once per combination until the next change (at most
        FILTERED_ORDERS combinations, least recently used dropped first), so a repeated
        filter or search is a bisect and a short walk."""
        key = (facets + tuple(f"q:{k}" for k in keys), field)
        entries = self._filtered.get(key)
        if entries is not None:
            self._filtered.move_to_end(key)
            return entries
        sets = sorted([self.postings.get(f, set()) for f in facets] + [self.with_prefix(k) for k in keys], key=len)
        wanted = set(sets[0]).intersection(*sets[1:])
        order = self.order(field)
        if len(wanted) * 8 < len(order):  # few matches: sorting them beats a pass over everything
            entries = sorted((self.titles[i] for i in wanted), key=lambda e: (e.value(field), e.id))
        else:
            entries = [e for e in order if e.id in wanted]
        while self._filtered and (len(self._filtered) >= FILTERED_ORDERS or
                                  self._filtered_size + len(entries) > FILTERED_SHARE * len(self.titles)):
            self._filtered_size -= len(self._filtered.popitem(last=False)[1])
        self._filtered[key] = entries
        self._filtered_size += len(entries)
        return entries


class CatalogReadModel:
    def __init__(self, titles: TitleRepository, pubsub: PubSub, *, poll_s: float = 2.0, rebuild_s: float = 900.0,
                 start_wait_s: float = 5.0, clock: Callable[[], int] | None = None, chunk: int = CHUNK,
                 retry_s: float = RETRY_S, retry_max_s: float = RETRY_MAX_S) -> None:
        self._repo = titles
        self._chunk = chunk
        self._retry_s = retry_s
        self._retry_max_s = retry_max_s
        self._pubsub = pubsub
        self._poll_s = poll_s
        self._rebuild_s = rebuild_s
        self._start_wait_s = start_wait_s
        self._clock = clock or (lambda: to_ms(now()))
        self._index = _Index()
        self._ready = asyncio.Event()
        self._watermark_ms = 0
        self._origin = secrets.token_hex(8)
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[list[str]], None]] = []
        self._unsubscribe: Callable[[], Awaitable[None]] | None = None

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe, then build in the background; wait a little so a small catalog is
        ready before the first request, while a big one holds readiness instead."""
        self._unsubscribe = await self._pubsub.subscribe(CHANGES_CHANNEL, self._on_message)
        self._task = asyncio.ensure_future(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), self._start_wait_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._unsubscribe is not None:
            await self._unsubscribe()
            self._unsubscribe = None

    def state(self) -> str:
        """For /readyz."""
        return "up" if self._ready.is_set() else "down: loading"

    @property
    def size(self) -> int:
        return len(self._index.titles)

    async def _run(self) -> None:
        rebuilt = 0.0
        while True:
            try:
                if not self._ready.is_set() or time.monotonic() - rebuilt >= self._rebuild_s:
                    await self.rebuild()
                    rebuilt = time.monotonic()
                else:
                    await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is down: keep serving what we have, try again
                log.exception("catalog read model refresh failed")
            await asyncio.sleep(self._poll_s)

    async def rebuild(self) -> None:
        """Read every title in `_id` order, a chunk at a time (no chunk holds the store for
        long), into a fresh index, then swap it in; changes that land meanwhile are re-read by
        the next poll. Chunks are positions: a title created meanwhile may be read twice (new
        ids sort last), and one deleted by hand may hide one other until the next rebuild.
        A chunk that fails (the store busy with a job's long command past the driver's
        timeout) is read again after a backoff, and the build goes on from there: starting
        over from the first chunk never finished at 100,000 titles."""
        started_ms = self._clock()
        index = _Index()
        read = 0
        while True:
            docs = await self._chunk_at(read)
            for doc in docs:
                index.put(entry_of(doc))
            if len(docs) < self._chunk:
                break
            read += len(docs)
            await asyncio.sleep(0)
        index.compact()
        self._index = index
        self._watermark_ms = max(self._watermark_ms, started_ms) if self._ready.is_set() else started_ms
        self._ready.set()

    async def _chunk_at(self, position: int) -> list[dict[str, Any]]:
        wait_s = self._retry_s
        while True:
            try:
                return await self._repo.model_chunk(position, self._chunk)
            except Exception:
                log.warning("catalog read model chunk failed; reading it again",
                            extra={"position": position, "retry_s": wait_s})
            await asyncio.sleep(wait_s)
            wait_s = min(self._retry_max_s, wait_s * 2)

    async def poll(self) -> None:
        started_ms = self._clock()
        docs = await self._repo.model_changed_since(self._watermark_ms - OVERLAP_MS)
        for doc in docs:
            self._index.put(entry_of(doc))
        if docs:
            self._tell([str(d["_id"]) for d in docs])
        self._watermark_ms = started_ms

    # --- changes ---------------------------------------------------------------------

    def on_change(self, listener: Callable[[list[str]], None]) -> None:
        """Call `listener(title_ids)` whenever titles are reloaded (a change here, a message
        from another process, the poll): what others keep about those titles is stale."""
        self._listeners.append(listener)

    def _tell(self, ids: list[str]) -> None:
        for listener in self._listeners:
            listener(ids)

    async def changed(self, ids: Iterable[str]) -> None:
        """A writer changed these titles: reload them here now, and on every other process."""
        wanted = sorted({str(i) for i in ids})
        if not wanted:
            return
        await self._reload(wanted)
        try:
            await self._pubsub.publish(CHANGES_CHANNEL, {"ids": wanted, "origin": self._origin})
        except Exception:  # the poll carries it to the other processes
            log.warning("catalog change not published; the poll will carry it")

    async def _on_message(self, message: dict[str, Any]) -> None:
        if message.get("origin") == self._origin:
            return
        ids = [str(i) for i in message.get("ids") or ()][:1000]
        if ids:
            await self._reload(ids)

    async def _reload(self, ids: list[str]) -> None:
        self._tell(ids)
        docs = await self._repo.model_by_ids(ids)
        for tid in ids:
            doc = docs.get(tid)
            if doc is None:
                self._index.drop(tid)  # gone from the store: gone here
            else:
                self._index.put(entry_of(doc))

    # --- reads -----------------------------------------------------------------------

    def _require(self) -> _Index:
        if not self._ready.is_set():
            raise errors.ServiceUnavailable("The catalog is still loading; try again shortly.",
                                            code="catalog_loading", headers={"Retry-After": "2"})
        return self._index

    def visible(self, title_id: str, now_ms: int, max_level: int) -> bool:
        entry = self._require().titles.get(title_id)
        return entry is not None and entry.visible(now_ms, max_level)

    def cards(self, ids: Iterable[str], now_ms: int | None = None,
              max_level: int | None = None) -> dict[str, Encoded]:
        """Cards by id; only the visible ones when a clock and ceiling are given."""
        titles = self._require().titles
        out = {}
        for tid in ids:
            entry = titles.get(str(tid))
            if entry is not None and (now_ms is None or max_level is None or entry.visible(now_ms, max_level)):
                out[entry.id] = entry.card
        return out

    def listed_cards(self, ids: Iterable[str], now_ms: int,
                     max_level: int) -> dict[str, tuple[Encoded, int | None]]:
        """Cards of the titles a profile may keep on its list: visible ones with None,
        announced ones with their release time."""
        titles = self._require().titles
        out: dict[str, tuple[Encoded, int | None]] = {}
        for tid in ids:
            entry = titles.get(str(tid))
            if entry is None:
                continue
            if entry.visible(now_ms, max_level):
                out[entry.id] = (entry.card, None)
            elif entry.announced(now_ms, max_level):
                out[entry.id] = (entry.card, entry.publish_at_ms)
        return out

    def listable(self, title_id: str, now_ms: int, max_level: int) -> bool:
        entry = self._require().titles.get(title_id)
        return entry is not None and (entry.visible(now_ms, max_level) or entry.announced(now_ms, max_level))

    def announced(self, now_ms: int, max_level: int, limit: int) -> list[tuple[Encoded, int]]:
        """Announced titles, soonest release first (ties by id): the coming soon row."""
        order = self._require().order("publish_at_ms")
        out: list[tuple[Encoded, int]] = []
        for i in range(bisect.bisect_right(order, now_ms, key=lambda e: e.publish_at_ms), len(order)):
            entry = order[i]
            if entry.announced(now_ms, max_level):
                out.append((entry.card, entry.publish_at_ms))
                if len(out) >= limit:
                    break
        return out

    def page(self, now_ms: int, max_level: int, *, kind: str | None = None, genre: str | None = None,
             category: str | None = None, language: str | None = None, keys: list[str] | None = None,
             sort: str = "popular", limit: int = 20, cursor: str | None = None,
             exclude: Iterable[str] = (), positive: bool = False) -> PageResult:
        """A page of visible titles ordered by (sort field, id) descending, as the store's
        keyset paging orders them, so cursors are interchangeable."""
        index = self._require()
        limit = max(1, min(MAX_LIMIT, limit))
        field = SORTS[sort]
        wanted: set[str] | None = None
        facets = [f for f in (kind and f"type:{kind}", genre and f"genre:{genre}",
                              category and f"category:{category}", language and f"language:{language}") if f]
        if facets or keys:
            entries = index.filtered(tuple(sorted(facets)), tuple(sorted(set(keys or ()))), field)
        else:
            entries = index.order(field)
        end = len(entries)
        if cursor:
            key, last_id = decode_cursor(cursor)
            with contextlib.suppress(TypeError):  # a cursor from another sort: start over
                end = bisect.bisect_left(entries, (key, str(last_id)), key=lambda e: (e.value(field), e.id))
        skip = set(exclude)
        items: list[Entry] = []
        for i in range(end - 1, -1, -1):
            entry = entries[i]
            if wanted is not None and entry.id not in wanted:
                continue
            if entry.id in skip or (positive and not entry.value(field) > 0):
                continue
            if not entry.visible(now_ms, max_level):
                continue
            items.append(entry)
            if len(items) > limit:
                break
        next_cursor = None
        if len(items) > limit:
            items = items[:limit]
            next_cursor = encode_cursor(items[-1].value(field), items[-1].id)
        return PageResult([e.card for e in items], next_cursor)
