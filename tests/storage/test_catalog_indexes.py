"""Storage behaviour the catalog relies on, recorded as in tests/storage/test_contract.py:
contract tests that must pass on MongoDB and nx-27017, and probes of two differences of
nx-27017 0.8.1 found while building the catalog (each fails with a message if it changes).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import TEXT, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

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
    """The form storage/catalog/titles.py uses for genres, categories, languages and search keys."""
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


async def test_deviation_text_index_cannot_be_created_again_once_there_are_documents(db: AsyncDatabase) -> None:
    """nx-27017 0.8.1: `create_indexes` with a text index that already exists fails with
    OperationFailure "constraint failed" once the collection has documents (MongoDB accepts
    an identical index again). storage/mongo.ensure_indexes runs at every start, so a text
    index in a repository's INDEXES would stop the server from restarting; the catalog
    searches with `$all` over a regular index instead."""
    coll = db.text_again
    model = IndexModel([("keys", TEXT)], default_language="none", name="search_text")
    await coll.create_indexes([model])
    await coll.insert_one({"_id": "a", "keys": ["x"]})
    try:
        await coll.create_indexes([model])
        observed = "accepted"
    except OperationFailure as exc:
        observed = "constraint failed" if "constraint failed" in str(exc) else f"other: {exc}"
    _expect(await _on_nx(db), "text index created again on a non-empty collection", observed,
            mongodb="accepted", nx="constraint failed")


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
