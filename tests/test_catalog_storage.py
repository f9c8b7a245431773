"""Storage behaviour the catalog relies on, recorded as in tests/test_storage_contract.py:
contract tests that must pass on MongoDB and nx-27017, and probes of two differences of
nx-27017 0.8.1 found while building the catalog (each fails with a message if it changes).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import TEXT, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.mongo import connect

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def db(mongo_url: str) -> AsyncIterator[AsyncDatabase]:
    client: AsyncMongoClient = connect(mongo_url)
    name = f"catalog_contract_{uuid.uuid4().hex[:12]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


async def _on_nx(db: AsyncDatabase) -> bool:
    info = await db.client.admin.command("buildInfo")
    return str(info.get("process", "")).startswith("nx")


def _expect(on_nx: bool, what: str, observed: object, *, mongodb: object, nx: object) -> None:
    expected = nx if on_nx else mongodb
    if observed == expected:
        return
    if on_nx and observed == mongodb:
        pytest.fail(f"{what}: nx-27017 now behaves like MongoDB ({observed!r}); the deviation is fixed: "
                    "update docs/storage-compat.md and this probe", pytrace=False)
    pytest.fail(f"{what}: expected {expected!r}, got {observed!r}", pytrace=False)


async def test_array_membership_with_all_and_in_is_right_with_or_without_an_index(db: AsyncDatabase) -> None:
    """The form storage/titles.py uses for genres, categories, languages and search keys."""
    coll = db.titles
    await coll.create_indexes([IndexModel([("keys", 1)]), IndexModel([("status", 1), ("genres", 1)])])
    await coll.insert_many([{"_id": "a", "keys": ["m", "ma", "mat"], "genres": ["drama"], "status": "p", "n": 2},
                            {"_id": "b", "keys": ["m", "mo"], "genres": ["drama", "comedy"], "status": "p", "n": 1}])
    assert [d["_id"] async for d in coll.find({"keys": {"$all": ["ma"]}})] == ["a"]
    assert [d["_id"] async for d in coll.find({"keys": {"$all": ["m", "mo"]}, "status": "p"})] == ["b"]
    found = coll.find({"genres": {"$all": ["drama"]}, "status": "p"}).sort([("n", -1), ("_id", -1)])
    assert [d["_id"] async for d in found] == ["a", "b"]
    assert [d["_id"] async for d in coll.find({"genres": {"$in": ["comedy"]}})] == ["b"]
    assert await coll.count_documents({"genres": {"$all": ["comedy"]}}) == 1


async def test_text_search_on_array_keys_narrows_and_all_keeps_the_and(db: AsyncDatabase) -> None:
    """The search shape of storage/titles.py: `$text` on one key over a text index on the
    array, plus `$all`, alone and inside the `$and` that keyset paging wraps it in."""
    coll = db.search
    await coll.create_indexes([IndexModel([("keys", TEXT)], default_language="none", name="search_text")])
    await coll.insert_many([
        {"_id": "a", "keys": ["m", "ma", "mat", "matrix", "k", "ke", "keanu"], "n": 3},
        {"_id": "b", "keys": ["m", "ma", "mat", "matilda", "r", "ro", "roald"], "n": 2},
        {"_id": "c", "keys": ["k", "ke", "kes", "m", "mo"], "n": 1},
    ])

    async def ids(query: dict) -> list[str]:
        return [d["_id"] async for d in coll.find(query).sort([("n", -1), ("_id", -1)])]

    assert await ids({"$text": {"$search": "mat"}, "keys": {"$all": ["mat"]}}) == ["a", "b"]
    assert await ids({"$text": {"$search": "mat"}, "keys": {"$all": ["mat", "ke"]}}) == ["a"]
    assert await ids({"$text": {"$search": "matri"}, "keys": {"$all": ["matri"]}}) == []  # exact keys only
    paged = {"$and": [{"$text": {"$search": "ke"}, "keys": {"$all": ["ke"]}},
                      {"$or": [{"n": {"$lt": 3}}, {"n": 3, "_id": {"$lt": "a"}}]}]}
    assert await ids(paged) == ["c"]


async def test_deviation_equality_on_an_indexed_array_field_matches_nothing(db: AsyncDatabase) -> None:
    """nx-27017 0.8.1: once an array field has a single-field index (or is a non-leading key
    of a compound one), `find({"arr": v})` compares the whole array with v and returns
    nothing; `count_documents` still counts right. `$all`/`$in` are right (test above)."""
    coll = db.indexed_array
    await coll.insert_many([{"_id": "a", "keys": ["x", "xy"]}, {"_id": "b", "keys": ["y"]}])
    assert [d["_id"] async for d in coll.find({"keys": "xy"})] == ["a"]  # right before the index
    await coll.create_indexes([IndexModel([("keys", 1)])])
    observed = [d["_id"] async for d in coll.find({"keys": "xy"})]
    _expect(await _on_nx(db), "find by equality on an indexed array field", observed, mongodb=["a"], nx=[])
    assert await coll.count_documents({"keys": "xy"}) == 1


async def test_deviation_find_one_and_update_into_a_unique_collision_returns_none(db: AsyncDatabase) -> None:
    """nx-27017 0.8.1: a find_one_and_update that would break a unique index answers None and
    changes nothing, where MongoDB raises DuplicateKeyError. update_one raises on both, so
    a change that can collide (renumbering an episode) uses update_one."""
    coll = db.unique_pairs
    await coll.create_indexes([IndexModel([("t", 1), ("n", 1)], unique=True)])
    await coll.insert_many([{"_id": "a", "t": "s", "n": 1}, {"_id": "b", "t": "s", "n": 2}])
    try:
        result = await coll.find_one_and_update({"_id": "a"}, {"$set": {"n": 2}},
                                                return_document=ReturnDocument.AFTER)
        observed: object = "none" if result is None else "updated"
    except DuplicateKeyError:
        observed = "DuplicateKeyError"
    _expect(await _on_nx(db), "find_one_and_update into a unique collision", observed,
            mongodb="DuplicateKeyError", nx="none")
    with pytest.raises(DuplicateKeyError):
        await coll.update_one({"_id": "a"}, {"$set": {"n": 2}})
    assert [d["n"] async for d in coll.find({}).sort("_id", 1)] == [1, 2]
