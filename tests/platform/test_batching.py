"""Point reads that arrive together are read together: one read of many keys while another
is on its way, never joining one already sent, each caller getting its own document."""

from __future__ import annotations

import asyncio

import pytest

from server.core.batching import BatchedReads
from tests.helpers import eventually

pytestmark = pytest.mark.asyncio


class Store:
    """The test's own key-value source: counts the reads of many keys and can hold one."""

    def __init__(self, docs: dict[str, str]) -> None:
        self.docs = docs
        self.reads: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failing: set[str] = set()

    async def load_many(self, keys: list[str]) -> dict[str, str]:
        snapshot = {key: self.docs[key] for key in keys if key in self.docs}  # read when sent
        self.reads.append(sorted(keys))
        await self.release.wait()
        if self.failing & set(keys):
            raise ConnectionError("store down")
        return snapshot


async def test_reads_asked_while_one_is_on_its_way_go_out_together() -> None:
    store = Store({f"k{i}": f"doc{i}" for i in range(10)})
    reads = BatchedReads(store.load_many)
    store.release.clear()
    first = asyncio.ensure_future(reads.get("k0"))
    await eventually(lambda: store.reads, "the first read sent")  # alone
    rest = [asyncio.ensure_future(reads.get(key)) for key in ("k1", "k2", "k2", "missing", "k9")]
    store.release.set()
    assert await first == "doc0"
    assert await asyncio.gather(*rest) == ["doc1", "doc2", "doc2", None, "doc9"]
    assert store.reads == [["k0"], ["k1", "k2", "k9", "missing"]]


async def test_a_read_asked_after_a_write_never_joins_a_batch_sent_before_it() -> None:
    store = Store({"k": "old"})
    reads = BatchedReads(store.load_many)
    store.release.clear()
    before = asyncio.ensure_future(reads.get("k"))
    await eventually(lambda: store.reads, "the first read sent")
    store.docs["k"] = "new"  # the write finishes while the first batch is out
    after = asyncio.ensure_future(reads.get("k"))
    store.release.set()
    assert (await before, await after) == ("old", "new")


async def test_a_failed_read_fails_its_callers_only_and_a_cancelled_caller_leaves_the_others() -> None:
    store = Store({"a": "A", "b": "B"})
    reads = BatchedReads(store.load_many)
    store.release.clear()
    store.failing = {"a"}
    failing = asyncio.ensure_future(reads.get("a"))
    await eventually(lambda: store.reads, "the first read sent")
    gives_up = asyncio.ensure_future(reads.get("b"))
    waits = asyncio.ensure_future(reads.get("b"))
    await asyncio.sleep(0)
    gives_up.cancel()
    store.release.set()
    with pytest.raises(ConnectionError):
        await failing
    assert await asyncio.wait_for(waits, 10) == "B"
    assert gives_up.cancelled()
    assert store.reads == [["a"], ["b"]]
