"""The storage contract: every query and update shape the product relies on, run through
pymongo's AsyncMongoClient (as `storage.mongo.connect` builds it) against the embedded
nx-27017 server, or against any MongoDB given as MONGO_URL.

Two kinds of test live here:

- contract tests assert the behaviour the product relies on; they must pass on MongoDB and
  on nx-27017 alike. Where nx-27017 differs from MongoDB, the contract test exercises the
  shape the data model uses instead (the workaround), never the broken one.
- deviation probes (`test_deviation_*`) record one known difference each: on MongoDB they
  assert MongoDB's result; on nx-27017 they assert the result nx-27017 0.8.1 is known to
  give, and fail with a clear message if it now gives MongoDB's result (the deviation was
  fixed: update docs/storage-compat.md) or anything else (it changed).

docs/storage-compat.md lists every deviation, the probe that records it and the rule of
the data model that keeps the product clear of it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
from bson import ObjectId
from pymongo import (
    ASCENDING,
    DESCENDING,
    TEXT,
    DeleteMany,
    DeleteOne,
    IndexModel,
    InsertOne,
    ReplaceOne,
    ReturnDocument,
    UpdateMany,
    UpdateOne,
)
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.asynchronous.mongo_client import AsyncMongoClient
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from storage.mongo import connect, ensure_indexes

pytestmark = pytest.mark.asyncio

UTC = dt.UTC
T0 = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
async def mongo_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient]:
    client = connect(mongo_url)
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def on_nx(mongo_client: AsyncMongoClient) -> bool:
    """True when the server is nx-27017 (its buildInfo names the process), False on MongoDB."""
    info = await mongo_client.admin.command("buildInfo")
    return str(info.get("process", "")).startswith("nx")


@pytest.fixture
async def db(mongo_client: AsyncMongoClient) -> AsyncIterator[AsyncDatabase]:
    """A fresh database per test, dropped afterwards."""
    name = f"contract_{uuid.uuid4().hex[:12]}"
    yield mongo_client[name]
    await mongo_client.drop_database(name)


class Deviation:
    """Records one known difference of nx-27017 0.8.1 from MongoDB."""

    def __init__(self, on_nx: bool) -> None:
        self.on_nx = on_nx

    def __call__(self, what: str, observed: Any, *, mongodb: Any, nx: Any) -> None:
        if not self.on_nx:
            assert observed == mongodb, f"{what}: MongoDB should give {mongodb!r}, got {observed!r}"
            return
        if observed == nx:
            return
        if observed == mongodb:
            pytest.fail(
                f"{what}: nx-27017 now behaves like MongoDB ({observed!r}); the deviation is fixed: "
                "update docs/storage-compat.md and this probe",
                pytrace=False,
            )
        pytest.fail(
            f"{what}: nx-27017 changed: got {observed!r}, neither MongoDB's {mongodb!r} "
            f"nor the known nx-27017 0.8.1 result {nx!r}; update docs/storage-compat.md",
            pytrace=False,
        )


@pytest.fixture
def deviation(on_nx: bool) -> Deviation:
    return Deviation(on_nx)


async def outcome(awaitable: Awaitable[Any]) -> Any:
    """The awaited value, or the name of the pymongo error it raised."""
    try:
        return await awaitable
    except OperationFailure as exc:
        return type(exc).__name__


async def aggregate(collection: Any, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cursor = await collection.aggregate(pipeline)
    return await cursor.to_list()


def types(values: list[Any]) -> list[str]:
    return [type(v).__name__ for v in values]


def new_id() -> str:
    """The product's document ids: ObjectId-ordered strings (see docs/storage-compat.md)."""
    return str(ObjectId())


# ---------------------------------------------------------------------------- identity and types


async def test_insert_and_find_by_objectid_and_string_id(db: AsyncDatabase) -> None:
    coll = db.things
    generated = await coll.insert_one({"kind": "auto"})
    assert isinstance(generated.inserted_id, ObjectId)
    found = await coll.find_one({"_id": generated.inserted_id})
    assert found is not None and found["_id"] == generated.inserted_id and isinstance(found["_id"], ObjectId)

    explicit = ObjectId()
    await coll.insert_one({"_id": explicit, "kind": "explicit"})
    await coll.insert_one({"_id": "acct_1", "kind": "string"})
    assert (await coll.find_one({"_id": explicit}))["kind"] == "explicit"
    assert (await coll.find_one({"_id": "acct_1"}))["kind"] == "string"
    assert await coll.find_one({"_id": "acct_2"}) is None
    assert await coll.find_one({"_id": ObjectId()}) is None
    both = await coll.find({"_id": {"$in": [explicit, "acct_1"]}}).to_list()
    assert sorted(d["kind"] for d in both) == ["explicit", "string"]

    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": "acct_1"})
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": explicit})


async def test_string_references_between_documents(db: AsyncDatabase) -> None:
    """References are stored as strings (never ObjectId values outside `_id`), so equality,
    `$in` and array membership work the same on MongoDB and nx-27017."""
    account = new_id()
    await db.accounts.insert_one({"_id": account, "name": "A"})
    await db.devices.insert_many(
        [
            {"_id": new_id(), "account_id": account, "shared_with": [account]},
            {"_id": new_id(), "account_id": new_id(), "shared_with": []},
        ]
    )
    assert await db.devices.count_documents({"account_id": account}) == 1
    assert await db.devices.count_documents({"account_id": {"$in": [account, "x"]}}) == 1
    assert await db.devices.count_documents({"shared_with": account}) == 1
    assert await db.devices.count_documents({"account_id": {"$ne": account}}) == 1


async def test_datetime_round_trip_is_tz_aware_utc(db: AsyncDatabase) -> None:
    coll = db.events
    at = dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    elsewhere = dt.datetime(2024, 3, 1, 1, 59, 58, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    await coll.insert_one(
        {"_id": "e1", "at": at, "other": elsewhere, "nested": {"at": at}, "items": [{"at": at}]}
    )
    doc = await coll.find_one({"_id": "e1"})
    # BSON datetimes are milliseconds since the epoch, in UTC
    assert doc["at"] == at.replace(microsecond=123000)
    for value in (doc["at"], doc["other"], doc["nested"]["at"], doc["items"][0]["at"]):
        assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0)
    assert doc["other"] == elsewhere  # the same instant, returned in UTC
    assert doc["other"].hour == 23

    # datetimes written after insert: "now" through $currentDate, any other instant inside an
    # embedded document written whole (a bare `$set` of a datetime is a deviation, see the probe)
    before = dt.datetime.now(UTC) - dt.timedelta(seconds=5)
    await coll.update_one(
        {"_id": "e1"}, {"$currentDate": {"seen_at": True}, "$set": {"period": {"start": T0, "end": at}}}
    )
    doc = await coll.find_one({"_id": "e1"})
    assert isinstance(doc["seen_at"], dt.datetime) and doc["seen_at"].utcoffset() == dt.timedelta(0)
    assert before <= doc["seen_at"] <= dt.datetime.now(UTC) + dt.timedelta(seconds=5)
    assert doc["period"] == {"start": T0, "end": at.replace(microsecond=123000)}
    assert len(await coll.find({"period.end": {"$lt": T0}}).to_list()) == 1
    assert len(await coll.find({"seen_at": {"$gt": before}}).to_list()) == 1

    await coll.insert_many([{"_id": f"r{i}", "at": T0 + dt.timedelta(hours=i)} for i in range(5)])
    window = {"at": {"$gte": T0 + dt.timedelta(hours=1), "$lt": T0 + dt.timedelta(hours=3)}}
    assert [d["_id"] for d in await coll.find(window).sort("at", ASCENDING).to_list()] == ["r1", "r2"]
    assert len(await coll.find({"at": T0 + dt.timedelta(hours=4)}).to_list()) == 1
    assert await coll.count_documents(window) == 2
    assert await coll.count_documents({"at": T0 + dt.timedelta(hours=4)}) == 1
    newest = await coll.find({"_id": {"$regex": "^r"}}).sort("at", DESCENDING).limit(1).to_list()
    assert newest[0]["_id"] == "r4"


async def test_booleans_are_read_through_bool(db: AsyncDatabase) -> None:
    """Flags written with `$set` are queried with True/False and read with bool(): nx-27017
    stores a top-level `$set` of a bool as 1/0 (see the probe below)."""
    coll = db.flags
    await coll.insert_many([{"_id": "a", "active": True}, {"_id": "b", "active": False}, {"_id": "c"}])
    await coll.update_one({"_id": "c"}, {"$set": {"active": True}})
    await coll.update_one({"_id": "a"}, {"$set": {"active": False}})
    assert {d["_id"] for d in await coll.find({"active": True}).to_list()} == {"c"}
    assert {d["_id"] for d in await coll.find({"active": False}).to_list()} == {"a", "b"}
    assert {d["_id"] for d in await coll.find({"active": {"$ne": True}}).to_list()} == {"a", "b"}
    docs = {d["_id"]: d for d in await coll.find().to_list()}
    assert bool(docs["c"]["active"]) is True and bool(docs["a"]["active"]) is False
    # booleans inside an embedded document written whole keep their type
    await coll.update_one({"_id": "c"}, {"$set": {"prefs": {"autoplay": True}}})
    assert (await coll.find_one({"_id": "c"}))["prefs"]["autoplay"] is True


# ---------------------------------------------------------------------------- indexes


async def test_unique_index_raises_duplicate_key(db: AsyncDatabase) -> None:
    users = db.users
    await users.create_index("email", unique=True)
    await users.insert_one({"_id": "u1", "email": "a@example.com"})
    await users.insert_one({"_id": "u2", "email": "b@example.com"})
    with pytest.raises(DuplicateKeyError) as insert_error:
        await users.insert_one({"_id": "u3", "email": "a@example.com"})
    assert insert_error.value.code == 11000
    with pytest.raises(DuplicateKeyError):
        await users.update_one({"_id": "u2"}, {"$set": {"email": "a@example.com"}})
    with pytest.raises(DuplicateKeyError):
        await users.update_one({"_id": "u9"}, {"$set": {"email": "a@example.com"}}, upsert=True)
    assert await users.count_documents({}) == 2
    assert (await users.find_one({"_id": "u2"}))["email"] == "b@example.com"

    devices = db.devices
    await devices.create_index([("account", ASCENDING), ("device", ASCENDING)], unique=True)
    await devices.insert_one({"account": "u1", "device": "tv"})
    await devices.insert_one({"account": "u1", "device": "phone"})
    await devices.insert_one({"account": "u2", "device": "tv"})
    with pytest.raises(DuplicateKeyError):
        await devices.insert_one({"account": "u1", "device": "tv"})

    # optional unique values (a phone number, a provider id): sparse, so many documents may lack it
    await users.create_index("phone", unique=True, sparse=True)
    await users.insert_one({"_id": "u3", "email": "c@example.com"})
    await users.insert_one({"_id": "u4", "email": "d@example.com", "phone": "+100"})
    with pytest.raises(DuplicateKeyError):
        await users.insert_one({"_id": "u5", "email": "e@example.com", "phone": "+100"})


async def test_compound_index_sort_on_two_keys_and_limit(db: AsyncDatabase) -> None:
    coll = db.history
    await coll.create_index([("owner", ASCENDING), ("watched_at", DESCENDING)])
    docs = [
        {"_id": f"h{i:02d}", "owner": "u1" if i % 3 else "u2", "watched_at": T0 + dt.timedelta(minutes=i // 2)}
        for i in range(12)
    ]
    await coll.insert_many(docs)
    expected = sorted(
        (d for d in docs if d["owner"] == "u1"), key=lambda d: (d["watched_at"], d["_id"]), reverse=True
    )[:3]
    got = await coll.find({"owner": "u1"}).sort([("watched_at", DESCENDING), ("_id", DESCENDING)]).limit(3).to_list()
    assert [d["_id"] for d in got] == [d["_id"] for d in expected]
    ascending = await coll.find({"owner": "u2"}).sort([("watched_at", ASCENDING), ("_id", ASCENDING)]).to_list()
    assert [d["_id"] for d in ascending] == ["h00", "h03", "h06", "h09"]
    skipped = await coll.find({}).sort([("owner", ASCENDING), ("_id", DESCENDING)]).skip(2).limit(2).to_list()
    assert [d["_id"] for d in skipped] == ["h08", "h07"]


async def test_ttl_index_is_accepted(db: AsyncDatabase) -> None:
    """The expiry itself is the server's job (MongoDB's TTL monitor runs once a minute); the
    product only relies on the index being created with its option."""
    name = await db.sessions.create_index("expires_at", expireAfterSeconds=0)
    assert name == "expires_at_1"
    await db.nonces.create_index("created_at", expireAfterSeconds=3600)
    by_key = {tuple(k for k, _ in spec["key"]): spec for spec in (await db.sessions.index_information()).values()}
    assert by_key[("expires_at",)]["expireAfterSeconds"] == 0
    by_key = {tuple(k for k, _ in spec["key"]): spec for spec in (await db.nonces.index_information()).values()}
    assert by_key[("created_at",)]["expireAfterSeconds"] == 3600


async def test_create_indexes_is_idempotent(db: AsyncDatabase) -> None:
    """`ensure_indexes` runs at every start; indexes are identified by their keys, never by
    the names `index_information()` reports (those differ on nx-27017)."""
    specs = {
        "users": [IndexModel([("email", ASCENDING)], unique=True), IndexModel([("created_at", DESCENDING)])],
        "history": [IndexModel([("owner", ASCENDING), ("watched_at", DESCENDING)])],
        "sessions": [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
        "titles": [IndexModel([("title", TEXT), ("synopsis", TEXT)])],
    }
    await ensure_indexes(db, specs)
    await ensure_indexes(db, specs)
    names = await db.history.create_indexes(list(specs["history"]))
    assert names == ["owner_1_watched_at_-1"]  # the name the driver and MongoDB agree on
    info = await db.users.index_information()
    keys = {tuple(k for k, _ in spec["key"]): spec for spec in info.values()}
    assert set(keys) == {("_id",), ("email",), ("created_at",)}
    assert keys[("email",)].get("unique") is True
    assert len(await db.history.index_information()) == 2
    assert len(await db.sessions.index_information()) == 2
    await db.users.insert_one({"email": "a@example.com"})
    with pytest.raises(DuplicateKeyError):
        await db.users.insert_one({"email": "a@example.com"})


async def test_text_index_and_search(db: AsyncDatabase) -> None:
    titles = db.titles
    await titles.create_index([("title", TEXT), ("synopsis", TEXT)])
    await titles.insert_many(
        [
            {"_id": "t1", "title": "The Big Heist", "synopsis": "A crew robs a bank", "kind": "movie"},
            {"_id": "t2", "title": "Quiet Garden", "synopsis": "Flowers and bees", "kind": "series"},
            {"_id": "t3", "title": "Heist Two", "synopsis": "Again", "kind": "movie"},
        ]
    )
    found = await titles.find({"$text": {"$search": "heist"}}).to_list()
    assert {d["_id"] for d in found} == {"t1", "t3"}
    assert await titles.count_documents({"$text": {"$search": "bees"}}) == 1
    assert await titles.count_documents({"$text": {"$search": "submarine"}}) == 0
    combined = await titles.find({"$text": {"$search": "heist"}, "kind": "movie"}).to_list()
    assert {d["_id"] for d in combined} == {"t1", "t3"}
    scored = await titles.find(
        {"$text": {"$search": "heist"}}, {"score": {"$meta": "textScore"}}
    ).sort([("score", {"$meta": "textScore"})]).to_list()
    assert {d["_id"] for d in scored} == {"t1", "t3"}
    assert all(isinstance(d["score"], float) and d["score"] > 0 for d in scored)


# ---------------------------------------------------------------------------- queries


async def test_cursor_paging_with_or_on_sort_key_and_id(db: AsyncDatabase) -> None:
    """Keyset paging newest-first with `_id` as the tie-breaker; ids are strings."""
    coll = db.feed
    await coll.create_index([("created_at", DESCENDING)])  # never `_id` in a compound index (see the probe)
    docs = [{"_id": new_id(), "created_at": T0 + dt.timedelta(seconds=i // 4)} for i in range(11)]
    await coll.insert_many(docs)
    expected = [d["_id"] for d in sorted(docs, key=lambda d: (d["created_at"], d["_id"]), reverse=True)]

    pages: list[list[str]] = []
    last: dict[str, Any] | None = None
    while True:
        query: dict[str, Any] = {}
        if last is not None:
            query = {
                "$or": [
                    {"created_at": {"$lt": last["created_at"]}},
                    {"created_at": last["created_at"], "_id": {"$lt": last["_id"]}},
                ]
            }
        page = await coll.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(4).to_list()
        if not page:
            break
        pages.append([d["_id"] for d in page])
        last = page[-1]
    assert [len(p) for p in pages] == [4, 4, 3]
    assert [i for p in pages for i in p] == expected

    # the same shape with a numeric key
    await db.scores.insert_many([{"_id": f"s{i:02d}", "k": i % 3} for i in range(9)])
    after = await db.scores.find({"$or": [{"k": {"$lt": 1}}, {"k": 1, "_id": {"$lt": "s07"}}]}).to_list()
    assert sorted(d["_id"] for d in after) == ["s00", "s01", "s03", "s04", "s06"]


async def test_query_operators(db: AsyncDatabase) -> None:
    coll = db.q
    docs = [
        {"_id": f"q{i}", "n": i, "s": "odd" if i % 2 else "even", **({"opt": i} if i % 3 == 0 else {})}
        for i in range(10)
    ]
    await coll.insert_many(docs)

    async def ids(query: dict[str, Any]) -> set[str]:
        return {d["_id"] for d in await coll.find(query).to_list()}

    def where(pred: Any) -> set[str]:
        return {d["_id"] for d in docs if pred(d)}

    assert await ids({"n": {"$in": [1, 2, 3]}}) == where(lambda d: d["n"] in (1, 2, 3))
    assert await ids({"n": {"$nin": [1, 2, 3]}}) == where(lambda d: d["n"] not in (1, 2, 3))
    assert await ids({"opt": {"$exists": True}}) == where(lambda d: "opt" in d)
    assert await ids({"opt": {"$exists": False}}) == where(lambda d: "opt" not in d)
    assert await ids({"s": {"$ne": "odd"}}) == where(lambda d: d["s"] != "odd")
    assert await ids({"opt": {"$ne": 3}}) == where(lambda d: d.get("opt") != 3)  # missing counts as "not 3"
    assert await ids({"n": {"$gte": 2, "$lt": 5}}) == where(lambda d: 2 <= d["n"] < 5)
    assert await ids({"n": {"$gt": 7}}) == where(lambda d: d["n"] > 7)
    assert await ids({"n": {"$lte": 1}}) == where(lambda d: d["n"] <= 1)
    assert await ids({"opt": None}) == where(lambda d: "opt" not in d)
    assert await ids({"$or": [{"n": 1}, {"s": "even"}]}) == where(lambda d: d["n"] == 1 or d["s"] == "even")
    assert await ids({"$and": [{"n": {"$gt": 1}}, {"n": {"$lt": 4}}]}) == where(lambda d: 1 < d["n"] < 4)
    assert await ids({"_id": {"$nin": ["q0", "q1"]}, "s": "even"}) == where(
        lambda d: d["_id"] not in ("q0", "q1") and d["s"] == "even"
    )
    assert await ids({"_id": {"$ne": "q0"}, "n": {"$lt": 3}}) == {"q1", "q2"}
    assert await ids({"s": {"$regex": "^OD", "$options": "i"}}) == where(lambda d: d["s"] == "odd")


async def test_nested_field_queries(db: AsyncDatabase) -> None:
    coll = db.profiles
    await coll.insert_many(
        [
            {"_id": "p1", "profile": {"name": "Ann", "prefs": {"quality": "hd", "autoplay": True}},
             "devices": [{"kind": "tv", "seen": 3}, {"kind": "phone", "seen": 9}]},
            {"_id": "p2", "profile": {"name": "Bob", "prefs": {"quality": "sd"}},
             "devices": [{"kind": "phone", "seen": 1}]},
            {"_id": "p3", "profile": {"name": "Cy"}},
        ]
    )
    assert [d["_id"] for d in await coll.find({"profile.prefs.quality": "hd"}).to_list()] == ["p1"]
    assert await coll.count_documents({"profile.prefs.quality": {"$in": ["hd", "sd"]}}) == 2
    assert await coll.count_documents({"profile.prefs": {"$exists": True}}) == 2
    assert await coll.count_documents({"profile.prefs.autoplay": {"$exists": False}}) == 2
    assert await coll.count_documents({"profile.name": {"$gt": "B"}}) == 2
    # equality through an array of embedded documents
    assert {d["_id"] for d in await coll.find({"devices.kind": "phone"}).to_list()} == {"p1", "p2"}
    assert [d["_id"] for d in await coll.find({"devices.kind": "tv"}).to_list()] == ["p1"]
    # ranges through an array of embedded documents: `$elemMatch` (see the probe below)
    assert [d["_id"] for d in await coll.find({"devices": {"$elemMatch": {"seen": {"$gt": 4}}}}).to_list()] == ["p1"]
    await coll.update_one({"_id": "p2"}, {"$set": {"profile.prefs.quality": "4k", "profile.lang": "fr"}})
    p2 = await coll.find_one({"_id": "p2"})
    assert p2["profile"] == {"name": "Bob", "prefs": {"quality": "4k"}, "lang": "fr"}


async def test_elem_match(db: AsyncDatabase) -> None:
    coll = db.subs
    await coll.insert_many(
        [
            {"_id": 1, "grants": [{"plan": "basic", "max_streams": 1}, {"plan": "premium", "max_streams": 4}],
             "tags": ["drama", "comedy"]},
            {"_id": 2, "grants": [{"plan": "basic", "max_streams": 2}], "tags": ["documentary"]},
        ]
    )
    match = await coll.find({"grants": {"$elemMatch": {"plan": "basic", "max_streams": {"$gte": 2}}}}).to_list()
    assert [d["_id"] for d in match] == [2]
    assert await coll.count_documents({"grants": {"$elemMatch": {"plan": "premium"}}}) == 1
    assert await coll.count_documents({"grants": {"$elemMatch": {"plan": "basic", "max_streams": 4}}}) == 0
    # regex over an array of strings: through $elemMatch (see the $regex probe)
    assert [d["_id"] for d in await coll.find({"tags": {"$elemMatch": {"$regex": "^doc"}}}).to_list()] == [2]
    assert await coll.count_documents({"tags": {"$all": ["drama", "comedy"]}}) == 1
    assert await coll.count_documents({"tags": {"$size": 1}}) == 1


async def test_count_documents_and_delete_many(db: AsyncDatabase) -> None:
    coll = db.jobs
    await coll.insert_many([{"_id": f"j{i}", "state": ["queued", "done", "failed"][i % 3]} for i in range(9)])
    assert await coll.count_documents({}) == 9
    assert await coll.count_documents({"state": "done"}) == 3
    assert await coll.count_documents({"state": {"$in": ["done", "failed"]}}) == 6
    assert await coll.count_documents({"state": "nope"}) == 0
    assert await coll.estimated_document_count() == 9
    result = await coll.delete_many({"state": {"$in": ["done", "failed"]}})
    assert result.deleted_count == 6
    assert await coll.count_documents({}) == 3
    assert (await coll.delete_many({"state": "done"})).deleted_count == 0
    assert (await coll.delete_one({"_id": "j0"})).deleted_count == 1
    assert await coll.count_documents({}) == 2


async def test_distinct(db: AsyncDatabase) -> None:
    coll = db.titles
    await coll.insert_many(
        [
            {"_id": "t1", "kind": "movie", "genres": ["drama", "crime"], "meta": {"lang": "en"}, "year": 2020},
            {"_id": "t2", "kind": "series", "genres": ["drama"], "meta": {"lang": "fr"}, "year": 2021},
            {"_id": "t3", "kind": "movie", "genres": ["comedy"], "meta": {"lang": "en"}, "year": 2022},
        ]
    )
    assert sorted(await coll.distinct("kind")) == ["movie", "series"]
    assert sorted(await coll.distinct("kind", {"year": {"$gte": 2021}})) == ["movie", "series"]
    assert await coll.distinct("kind", {"year": 2020}) == ["movie"]
    assert sorted(await coll.distinct("genres")) == ["comedy", "crime", "drama"]
    assert sorted(await coll.distinct("meta.lang")) == ["en", "fr"]
    # ids of matching documents: a projection, not distinct("_id") (see the probe)
    ids = [d["_id"] for d in await coll.find({"kind": "movie"}, {"_id": 1}).to_list()]
    assert sorted(ids) == ["t1", "t3"]


async def test_projection(db: AsyncDatabase) -> None:
    coll = db.accounts
    oid = ObjectId()
    await coll.insert_one(
        {"_id": oid, "email": "a@example.com", "password_hash": "x", "profile": {"name": "Ann", "bio": "hi"}}
    )
    await coll.insert_one({"_id": "acct_s", "email": "s@example.com", "password_hash": "y", "profile": {"name": "S"}})
    included = await coll.find_one({"_id": oid}, {"email": 1, "profile": 1})
    assert included == {"_id": oid, "email": "a@example.com", "profile": {"name": "Ann", "bio": "hi"}}
    assert isinstance(included["_id"], ObjectId)
    excluded = await coll.find_one({"_id": oid}, {"password_hash": 0})
    assert set(excluded) == {"_id", "email", "profile"}
    assert await coll.find_one({"_id": oid}, {"email": 1, "_id": 0}) == {"email": "a@example.com"}
    listed = await coll.find({}, {"email": 1}).sort("email", ASCENDING).to_list()
    assert [sorted(d) for d in listed] == [["_id", "email"], ["_id", "email"]]
    # aggregation projections over string ids keep them as they are
    projected = await aggregate(coll, [{"$match": {"email": "s@example.com"}}, {"$project": {"email": 1}}])
    assert projected == [{"_id": "acct_s", "email": "s@example.com"}]


# ---------------------------------------------------------------------------- updates


async def test_update_operators_on_scalars_and_arrays_of_scalars(db: AsyncDatabase) -> None:
    """Array fields are created with the document (`[]`), then grown with $push/$addToSet."""
    coll = db.lists
    await coll.insert_one({"_id": "l1", "name": "x", "obsolete": 1, "tags": [], "recent": [], "stats": {"plays": 0}})
    result = await coll.update_one(
        {"_id": "l1"},
        {"$set": {"name": "y", "meta.lang": "en"}, "$unset": {"obsolete": ""}, "$inc": {"stats.plays": 2, "views": 1}},
    )
    assert result.matched_count == 1 and result.modified_count == 1
    doc = await coll.find_one({"_id": "l1"})
    assert doc["name"] == "y" and doc["meta"] == {"lang": "en"} and "obsolete" not in doc
    assert doc["stats"] == {"plays": 2} and doc["views"] == 1
    await coll.update_one({"_id": "l1"}, {"$inc": {"stats.plays": -1, "views": 5}})
    doc = await coll.find_one({"_id": "l1"})
    assert doc["stats"]["plays"] == 1 and doc["views"] == 6

    await coll.update_one({"_id": "l1"}, {"$addToSet": {"tags": "drama"}})
    second = await coll.update_one({"_id": "l1"}, {"$addToSet": {"tags": "drama"}})
    assert second.matched_count == 1 and second.modified_count == 0
    await coll.update_one({"_id": "l1"}, {"$addToSet": {"tags": {"$each": ["crime", "drama", "noir"]}}})
    assert (await coll.find_one({"_id": "l1"}))["tags"] == ["drama", "crime", "noir"]
    await coll.update_one({"_id": "l1"}, {"$pull": {"tags": "crime"}})
    assert (await coll.find_one({"_id": "l1"}))["tags"] == ["drama", "noir"]
    await coll.update_one({"_id": "l1"}, {"$pull": {"tags": {"$in": ["drama", "absent"]}}})
    assert (await coll.find_one({"_id": "l1"}))["tags"] == ["noir"]

    for title in ("t1", "t2", "t3"):
        await coll.update_one({"_id": "l1"}, {"$push": {"recent": title}})
    await coll.update_one({"_id": "l1"}, {"$push": {"recent": 7}})
    assert (await coll.find_one({"_id": "l1"}))["recent"] == ["t1", "t2", "t3", 7]
    await coll.update_one({"_id": "l1"}, {"$push": {"recent": {"$each": ["t4", "t5"], "$slice": -3}}})
    assert (await coll.find_one({"_id": "l1"}))["recent"] == [7, "t4", "t5"]
    assert await coll.count_documents({"recent": "t4"}) == 1


async def test_update_operators_on_embedded_documents(db: AsyncDatabase) -> None:
    """Arrays of embedded documents are grown with $addToSet (items carry their own id, so
    they are unique) or rewritten whole with $set under a version check; never $push (see
    the probe below)."""
    coll = db.parties
    await coll.insert_one({"_id": "party", "version": 1, "members": [{"id": "u1", "role": "host", "at": T0}]})
    await coll.update_one({"_id": "party"}, {"$set": {"settings": {"sync": True, "max": 8}}})
    await coll.update_one({"_id": "party"}, {"$set": {"settings.max": 10}})
    assert (await coll.find_one({"_id": "party"}))["settings"] == {"sync": True, "max": 10}

    joined = {"id": "u2", "role": "guest", "at": T0 + dt.timedelta(minutes=1)}
    assert (await coll.update_one({"_id": "party"}, {"$addToSet": {"members": joined}})).modified_count == 1
    assert (await coll.update_one({"_id": "party"}, {"$addToSet": {"members": joined}})).modified_count == 0
    await coll.update_one(
        {"_id": "party"}, {"$addToSet": {"members": {"$each": [{"id": "u3", "role": "guest"}, {"id": "u4"}]}}}
    )
    members = (await coll.find_one({"_id": "party"}))["members"]
    assert [m["id"] for m in members] == ["u1", "u2", "u3", "u4"]
    assert members[1] == joined  # embedded datetimes survive as datetimes
    assert await coll.count_documents({"members": {"$elemMatch": {"id": "u2", "role": "guest"}}}) == 1

    await coll.update_one({"_id": "party"}, {"$pull": {"members": {"id": "u3"}}})
    await coll.update_one({"_id": "party"}, {"$pull": {"members": {"role": "guest"}}})
    assert [m["id"] for m in (await coll.find_one({"_id": "party"}))["members"]] == ["u1", "u4"]

    # rewrite the whole array, guarded by the version read with it
    doc = await coll.find_one({"_id": "party"})
    members = [{**m, "role": "host" if m["id"] == "u4" else "guest"} for m in doc["members"]]
    result = await coll.update_one(
        {"_id": "party", "version": doc["version"]}, {"$set": {"members": members}, "$inc": {"version": 1}}
    )
    assert result.modified_count == 1
    doc = await coll.find_one({"_id": "party"})
    assert doc["version"] == 2
    assert [(m["id"], m["role"]) for m in doc["members"]] == [("u1", "guest"), ("u4", "host")]
    assert doc["members"][0]["at"] == T0


async def test_update_one_upsert_with_set_on_insert(db: AsyncDatabase) -> None:
    coll = db.watch_state
    first = await coll.update_one(
        {"_id": "u1:t1"},
        {"$setOnInsert": {"created_at": T0, "plays": 0, "tags": []}, "$set": {"position": 10, "seen": {"at": T0}}},
        upsert=True,
    )
    assert first.upserted_id == "u1:t1" and first.matched_count == 0
    later = T0 + dt.timedelta(minutes=5)
    second = await coll.update_one(
        {"_id": "u1:t1"},
        {"$setOnInsert": {"created_at": later, "plays": 99, "tags": []},
         "$set": {"position": 20, "seen": {"at": later}}},
        upsert=True,
    )
    assert second.upserted_id is None and second.matched_count == 1
    doc = await coll.find_one({"_id": "u1:t1"})
    assert doc == {"_id": "u1:t1", "created_at": T0, "plays": 0, "tags": [], "position": 20, "seen": {"at": later}}

    # equality fields of the filter are copied into the inserted document
    third = await coll.update_one(
        {"account": "u2", "title": "t9"}, {"$setOnInsert": {"plays": 0}, "$set": {"position": 1}}, upsert=True
    )
    assert third.upserted_id is not None
    doc = await coll.find_one({"_id": third.upserted_id})
    assert (doc["account"], doc["title"], doc["plays"], doc["position"]) == ("u2", "t9", 0, 1)


async def test_find_one_and_update(db: AsyncDatabase) -> None:
    coll = db.counters
    await coll.insert_many([{"_id": "a", "n": 1, "rank": 1}, {"_id": "b", "n": 5, "rank": 2}])
    after = await coll.find_one_and_update({"_id": "a"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER)
    assert after == {"_id": "a", "n": 2, "rank": 1}
    before = await coll.find_one_and_update({"_id": "a"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.BEFORE)
    assert before["n"] == 2 and (await coll.find_one({"_id": "a"}))["n"] == 3
    assert await coll.find_one_and_update({"_id": "zz"}, {"$inc": {"n": 1}}) is None
    assert await coll.find_one({"_id": "zz"}) is None
    projected = await coll.find_one_and_update(
        {"_id": "b"}, {"$set": {"state": "busy"}}, projection={"state": 1}, return_document=ReturnDocument.AFTER
    )
    assert projected == {"_id": "b", "state": "busy"}
    # claim the first matching document in a given order (job queues)
    claimed = await coll.find_one_and_update(
        {"state": {"$exists": False}}, {"$set": {"state": "busy"}}, sort=[("rank", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    )
    assert claimed["_id"] == "a" and claimed["state"] == "busy"
    # upsert without $setOnInsert behaves as MongoDB does
    created = await coll.find_one_and_update(
        {"_id": "c"}, {"$set": {"state": "new"}, "$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert created == {"_id": "c", "state": "new", "n": 1}
    again = await coll.find_one_and_update(
        {"_id": "c"}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert again == {"_id": "c", "state": "new", "n": 2}


async def test_get_or_create_then_modify(db: AsyncDatabase) -> None:
    """The product's replacement for `find_one_and_update(upsert=True)` with `$setOnInsert`:
    create with `update_one(upsert=True)`, then modify atomically and read back."""
    coll = db.wallets
    for expected_n in (1, 2):
        await coll.update_one(
            {"_id": "w1"}, {"$setOnInsert": {"created_at": T0, "currency": "EUR", "n": 0}}, upsert=True
        )
        doc = await coll.find_one_and_update(
            {"_id": "w1"}, {"$inc": {"n": 1}, "$currentDate": {"seen_at": True}}, return_document=ReturnDocument.AFTER
        )
        seen_at = doc.pop("seen_at")
        assert isinstance(seen_at, dt.datetime) and seen_at.utcoffset() == dt.timedelta(0)
        assert doc == {"_id": "w1", "created_at": T0, "currency": "EUR", "n": expected_n}


async def test_conditional_update_for_optimistic_concurrency(db: AsyncDatabase) -> None:
    coll = db.releases
    await coll.insert_one({"_id": "r1", "version": 1, "state": "draft"})
    ok = await coll.update_one(
        {"_id": "r1", "version": 1, "state": "draft"}, {"$set": {"state": "scheduled"}, "$inc": {"version": 1}}
    )
    assert (ok.matched_count, ok.modified_count) == (1, 1)
    stale = await coll.update_one({"_id": "r1", "version": 1}, {"$set": {"state": "live"}, "$inc": {"version": 1}})
    assert (stale.matched_count, stale.modified_count) == (0, 0)
    wrong_state = await coll.update_one({"_id": "r1", "state": "draft"}, {"$set": {"state": "live"}})
    assert wrong_state.matched_count == 0
    assert await coll.find_one({"_id": "r1"}) == {"_id": "r1", "version": 2, "state": "scheduled"}
    # ten writers race on the same version: exactly one wins
    results = await asyncio.gather(
        *[coll.update_one({"_id": "r1", "version": 2}, {"$set": {"state": f"w{i}"}, "$inc": {"version": 1}})
          for i in range(10)]
    )
    assert sum(r.modified_count for r in results) == 1
    assert (await coll.find_one({"_id": "r1"}))["version"] == 3
    claimed = await asyncio.gather(
        *[coll.find_one_and_update({"_id": "r1", "state": {"$ne": "claimed"}}, {"$set": {"state": "claimed"}})
          for _ in range(10)]
    )
    assert sum(1 for c in claimed if c is not None) == 1


async def test_concurrent_inc_is_exact(db: AsyncDatabase) -> None:
    coll = db.counters
    await coll.insert_one({"_id": "plays", "n": 0})
    await asyncio.gather(*[coll.update_one({"_id": "plays"}, {"$inc": {"n": 1}}) for _ in range(50)])
    assert (await coll.find_one({"_id": "plays"}))["n"] == 50
    # counters that do not exist yet: concurrent upserts make one document
    await asyncio.gather(
        *[coll.update_one({"_id": "day:2024-03-01"}, {"$inc": {"n": 1}}, upsert=True) for _ in range(50)]
    )
    assert await coll.find({"_id": "day:2024-03-01"}).to_list() == [{"_id": "day:2024-03-01", "n": 50}]
    values = await asyncio.gather(
        *[coll.find_one_and_update({"_id": "seq"}, {"$inc": {"n": 1}}, upsert=True,
                                   return_document=ReturnDocument.AFTER) for _ in range(20)]
    )
    assert sorted(v["n"] for v in values) == list(range(1, 21))


async def test_bulk_write(db: AsyncDatabase) -> None:
    coll = db.bulk
    await coll.insert_many([{"_id": f"b{i}", "n": i} for i in range(5)])
    result = await coll.bulk_write(
        [
            InsertOne({"_id": "b9", "n": 9}),
            UpdateOne({"_id": "b0"}, {"$inc": {"n": 10}}),
            UpdateOne({"_id": "b7"}, {"$set": {"n": 7}}, upsert=True),
            UpdateMany({"n": {"$lt": 3}}, {"$set": {"low": "yes"}}),
            ReplaceOne({"_id": "b3"}, {"n": 33}),
            DeleteOne({"_id": "b4"}),
            DeleteMany({"n": {"$gt": 100}}),
        ]
    )
    assert result.inserted_count == 1
    assert result.upserted_count == 1 and result.upserted_ids == {2: "b7"}
    assert result.deleted_count == 1
    assert result.matched_count == 4  # b0, then b1 and b2, then b3
    docs = {d["_id"]: d for d in await coll.find().to_list()}
    assert sorted(docs) == ["b0", "b1", "b2", "b3", "b7", "b9"]
    assert docs["b0"] == {"_id": "b0", "n": 10}
    assert docs["b1"]["low"] == "yes" and docs["b2"]["low"] == "yes"
    assert docs["b3"] == {"_id": "b3", "n": 33}
    with pytest.raises(BulkWriteError) as failed:
        await coll.bulk_write([InsertOne({"_id": "c1"}), InsertOne({"_id": "b0"}), InsertOne({"_id": "c2"})])
    assert failed.value.details["nInserted"] == 1
    assert [e["code"] for e in failed.value.details["writeErrors"]] == [11000]
    assert await coll.count_documents({"_id": {"$in": ["c1", "c2"]}}) == 1  # ordered: stops at the error


# ---------------------------------------------------------------------------- aggregation


async def test_aggregate_match_group_sort_limit(db: AsyncDatabase) -> None:
    coll = db.plays
    base_ms = 1_709_251_200_000
    docs = [
        {"_id": f"p{i:02d}", "title": f"t{i % 4}", "account": f"u{i % 3}", "seconds": 10 * i,
         "day": f"2024-03-{1 + i % 5:02d}", "at_ms": base_ms + i * 60_000,
         "genres": ["drama", "crime"] if i % 2 else ["comedy"]}
        for i in range(20)
    ]
    await coll.insert_many(docs)
    kept = [d for d in docs if d["seconds"] >= 30 and d["title"] != "t3"]
    groups = {
        title: [d["seconds"] for d in kept if d["title"] == title] for title in sorted({d["title"] for d in kept})
    }
    expected_top = sorted(
        ({"_id": t, "plays": len(v), "seconds": sum(v), "avg": sum(v) / len(v), "longest": max(v)}
         for t, v in groups.items()),
        key=lambda g: g["seconds"], reverse=True,
    )[:2]
    top = await aggregate(
        coll,
        [
            {"$match": {"seconds": {"$gte": 30}, "title": {"$ne": "t3"}}},
            {"$group": {"_id": "$title", "plays": {"$sum": 1}, "seconds": {"$sum": "$seconds"},
                        "avg": {"$avg": "$seconds"}, "longest": {"$max": "$seconds"}}},
            {"$sort": {"seconds": DESCENDING}},
            {"$limit": 2},
        ],
    )
    assert top == expected_top
    # date windows in pipelines match on a day string or an epoch number (see the probes)
    per_day = await aggregate(
        coll,
        [
            {"$match": {"day": {"$gte": "2024-03-03", "$lt": "2024-03-05"}}},
            {"$group": {"_id": "$day", "n": {"$sum": 1}, "last_ms": {"$max": "$at_ms"}}},
            {"$sort": {"_id": ASCENDING}},
        ],
    )
    assert per_day == [
        {"_id": day, "n": len(ms), "last_ms": max(ms)}
        for day in ("2024-03-03", "2024-03-04")
        for ms in [[d["at_ms"] for d in docs if d["day"] == day]]
    ]
    window = await aggregate(coll, [{"$match": {"at_ms": {"$gte": base_ms + 15 * 60_000}}}, {"$count": "n"}])
    assert window == [{"n": 5}]
    genres = await aggregate(
        coll,
        [{"$unwind": "$genres"}, {"$group": {"_id": "$genres", "n": {"$sum": 1}}}, {"$sort": {"n": -1, "_id": 1}}],
    )
    assert genres == [{"_id": "comedy", "n": 10}, {"_id": "crime", "n": 10}, {"_id": "drama", "n": 10}]
    total = await aggregate(coll, [{"$group": {"_id": None, "seconds": {"$sum": "$seconds"}}}])
    assert total == [{"_id": None, "seconds": 1900}]
    by_id = await aggregate(coll, [{"$match": {"_id": {"$in": ["p01", "p02"]}}}, {"$count": "n"}])
    assert by_id == [{"n": 2}]


async def test_lookup_joins_on_string_keys(db: AsyncDatabase) -> None:
    """A joined array is read as is only when neither side of the join is `_id`; a join on
    `_id` is consumed through $unwind (one-to-one) or reduced in a $project ($size) (see the
    probe below)."""
    await db.accounts.insert_many(
        [{"_id": u, "key": u, "name": n} for u, n in (("u1", "Ann"), ("u2", "Bob"), ("u3", "Cy"))]
    )
    await db.plays.insert_many(
        [{"_id": "p1", "account": "u1", "s": 5}, {"_id": "p2", "account": "u1", "s": 7},
         {"_id": "p3", "account": "u2", "s": 1}]
    )
    joined = await aggregate(
        db.plays,
        [
            {"$lookup": {"from": "accounts", "localField": "account", "foreignField": "_id", "as": "acct"}},
            {"$unwind": "$acct"},
            {"$sort": {"_id": 1}},
        ],
    )
    assert [(d["_id"], d["acct"]["name"]) for d in joined] == [("p1", "Ann"), ("p2", "Ann"), ("p3", "Bob")]
    assert all(isinstance(d["acct"], dict) and isinstance(d["_id"], str) for d in joined)
    counts = await aggregate(
        db.accounts,
        [
            {"$lookup": {"from": "plays", "localField": "_id", "foreignField": "account", "as": "plays"}},
            {"$project": {"name": 1, "n": {"$size": "$plays"}}},
            {"$sort": {"_id": 1}},
        ],
    )
    assert counts == [{"_id": "u1", "name": "Ann", "n": 2}, {"_id": "u2", "name": "Bob", "n": 1},
                      {"_id": "u3", "name": "Cy", "n": 0}]
    lists = await aggregate(
        db.accounts,
        [
            {"$match": {"name": {"$in": ["Ann", "Cy"]}}},
            {"$lookup": {"from": "plays", "localField": "key", "foreignField": "account", "as": "plays"}},
            {"$sort": {"_id": 1}},
        ],
    )
    assert [(d["_id"], sorted(p["_id"] for p in d["plays"])) for d in lists] == [("u1", ["p1", "p2"]), ("u3", [])]


# ---------------------------------------------------------------------------- transactions


async def test_transaction_commit_and_abort(db: AsyncDatabase, mongo_client: AsyncMongoClient) -> None:
    coll = db.ledger
    await coll.insert_one({"_id": "a", "balance": 10})
    async with mongo_client.start_session() as session:
        async with await session.start_transaction():
            await coll.update_one({"_id": "a"}, {"$inc": {"balance": -4}}, session=session)
            await coll.insert_one({"_id": "b", "balance": 4}, session=session)
    assert await coll.find().sort("_id", 1).to_list() == [{"_id": "a", "balance": 6}, {"_id": "b", "balance": 4}]

    with pytest.raises(RuntimeError, match="refused"):
        async with mongo_client.start_session() as session:
            async with await session.start_transaction():
                await coll.update_one({"_id": "a"}, {"$inc": {"balance": -6}}, session=session)
                await coll.insert_one({"_id": "c", "balance": 6}, session=session)
                raise RuntimeError("refused")
    assert await coll.find().sort("_id", 1).to_list() == [{"_id": "a", "balance": 6}, {"_id": "b", "balance": 4}]

    async with mongo_client.start_session() as session:
        await session.start_transaction()
        await coll.update_one({"_id": "b"}, {"$set": {"balance": 0}}, session=session)
        assert (await coll.find_one({"_id": "b"}, session=session))["balance"] == 0  # reads its own writes
        await session.abort_transaction()
    assert (await coll.find_one({"_id": "b"}))["balance"] == 4


# ---------------------------------------------------------------------------- deviation probes


async def test_deviation_find_one_and_update_upsert_drops_set_on_insert(
    db: AsyncDatabase, deviation: Deviation
) -> None:
    coll = db.probe
    returned = await coll.find_one_and_update(
        {"_id": "x"}, {"$setOnInsert": {"a": 1}, "$set": {"b": 2}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    stored = await coll.find_one({"_id": "x"})
    deviation(
        "find_one_and_update(upsert=True) with $setOnInsert",
        (returned, stored),
        mongodb=({"_id": "x", "a": 1, "b": 2}, {"_id": "x", "a": 1, "b": 2}),
        nx=({"_id": "x", "b": 2}, {"_id": "x", "b": 2}),
    )


async def test_deviation_push_of_embedded_document_stores_json_strings(
    db: AsyncDatabase, deviation: Deviation
) -> None:
    coll = db.probe
    await coll.insert_one({"_id": "p", "items": [{"k": 1}]})
    await coll.update_one({"_id": "p"}, {"$push": {"items": {"k": 2}}})
    plain = (await coll.find_one({"_id": "p"}))["items"]
    await coll.insert_one({"_id": "s", "items": [{"k": 1}]})
    await coll.update_one({"_id": "s"}, {"$push": {"items": {"$each": [{"k": 2}, {"k": 3}], "$slice": -2}}})
    sliced = (await coll.find_one({"_id": "s"}))["items"]
    deviation(
        "$push of an embedded document onto an existing array (plain, and $each/$slice)",
        (plain, sliced),
        mongodb=([{"k": 1}, {"k": 2}], [{"k": 2}, {"k": 3}]),
        # the pushed element AND the elements already there come back as JSON text
        nx=(['{"k":1}', '{"k":2}'], ['{"k":2}', '{"k":3}']),
    )
    # an upsert that creates the array is not affected
    await coll.update_one({"_id": "u"}, {"$push": {"items": {"k": 1}}}, upsert=True)
    assert (await coll.find_one({"_id": "u"}))["items"] == [{"k": 1}]


async def test_deviation_push_of_non_json_scalars(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    await coll.insert_one({"_id": "p", "dates": [], "ids": [], "flags": []})
    await coll.update_one({"_id": "p"}, {"$push": {"dates": T0, "ids": ObjectId(), "flags": True}})
    doc = await coll.find_one({"_id": "p"})
    deviation(
        "$push of a datetime, an ObjectId and a bool",
        (types(doc["dates"]), types(doc["ids"]), types(doc["flags"])),
        mongodb=(["datetime"], ["ObjectId"], ["bool"]),
        nx=(["str"], ["str"], ["int"]),
    )


async def test_deviation_set_of_top_level_bool_stores_int(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    await coll.insert_one({"_id": "b", "inserted": True})
    await coll.update_one({"_id": "b"}, {"$set": {"on": True, "off": False, "nested.on": True}})
    doc = await coll.find_one({"_id": "b"})
    deviation(
        "$set of a bool on an existing document",
        (type(doc["inserted"]).__name__, type(doc["on"]).__name__, type(doc["off"]).__name__,
         type(doc["nested"]["on"]).__name__),
        mongodb=("bool", "bool", "bool", "bool"),
        nx=("bool", "int", "int", "int"),
    )


async def test_deviation_add_to_set_on_missing_field_is_ignored(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    await coll.insert_one({"_id": "a", "n": 1})
    result = await coll.update_one({"_id": "a"}, {"$addToSet": {"tags": "q"}})
    doc = await coll.find_one({"_id": "a"})
    deviation(
        "$addToSet on a field the document does not have yet",
        (result.modified_count, doc.get("tags")),
        mongodb=(1, ["q"]),
        nx=(0, None),
    )


async def test_deviation_set_through_array_index_is_ignored(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    await coll.insert_one({"_id": "a", "list": [{"k": 1}, {"k": 2}]})
    await coll.update_one({"_id": "a"}, {"$set": {"list.0.k": 9}})
    deviation(
        "$set through an array index path ('list.0.k')",
        (await coll.find_one({"_id": "a"}))["list"],
        mongodb=[{"k": 9}, {"k": 2}],
        nx=[{"k": 1}, {"k": 2}],
    )


async def test_deviation_regex_against_array_field(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    await coll.insert_one({"_id": "r", "tags": ["alpha", "beta"], "name": "alphabet"})
    assert await coll.count_documents({"name": {"$regex": "^alp"}}) == 1
    assert await coll.count_documents({"tags": {"$elemMatch": {"$regex": "^alp"}}}) == 1
    deviation(
        "$regex against an array of strings",
        await coll.count_documents({"tags": {"$regex": "^alp"}}),
        mongodb=1,
        nx=0,
    )


async def test_deviation_range_and_exists_through_array_of_documents(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    await coll.insert_many([{"_id": 1, "subs": [{"v": 1}, {"v": 5}]}, {"_id": 2, "subs": [{"v": 2}]}])
    assert await coll.count_documents({"subs.v": 5}) == 1  # equality works
    deviation(
        "range and $exists on a dotted path through an array of documents",
        (await coll.count_documents({"subs.v": {"$gt": 4}}), await coll.count_documents({"subs.v": {"$exists": True}})),
        mongodb=(1, 2),
        nx=(0, 0),
    )


async def test_deviation_not_operator(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    await coll.insert_many([{"_id": i, "n": i} for i in range(4)])
    deviation(
        "$not",
        await outcome(coll.count_documents({"n": {"$not": {"$gt": 1}}})),
        mongodb=2,
        nx="OperationFailure",
    )


async def test_deviation_update_filter_on_whole_array_value(db: AsyncDatabase, deviation: Deviation) -> None:
    """An update whose filter compares a field with a whole array fails to bind on nx."""
    coll = db.probe
    await coll.insert_one({"_id": "a", "codes": ["x", "y"]})
    result = await outcome(coll.update_one({"_id": "a", "codes": ["x", "y"]}, {"$set": {"codes": ["y"]}}))
    deviation(
        "update filter equal to a whole array",
        result if isinstance(result, str) else result.modified_count,
        mongodb=1,
        nx="WriteError",
    )


async def test_deviation_objectid_outside_id(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    ref = ObjectId()
    await coll.insert_one({"_id": "d", "ref": ref, "refs": [ref]})
    doc = await coll.find_one({"_id": "d"})
    assert doc["ref"] == ref and doc["refs"] == [ref]  # stored and read back intact
    deviation(
        "query by an ObjectId value in a field other than _id (equality, $in, array member, hex string)",
        (
            await coll.count_documents({"ref": ref}),
            await coll.count_documents({"ref": {"$in": [ref]}}),
            await coll.count_documents({"refs": ref}),
            await coll.count_documents({"ref": str(ref)}),
        ),
        mongodb=(1, 1, 1, 0),
        nx=(0, 0, 0, 1),
    )


async def test_deviation_objectid_id_comparisons(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    ids = [ObjectId() for _ in range(5)]
    await coll.insert_many([{"_id": i, "k": n} for n, i in enumerate(ids)])

    async def found(query: dict[str, Any]) -> int:
        return len(await coll.find(query).to_list())

    assert await found({"_id": ids[2]}) == 1
    assert await found({"_id": {"$in": ids[:2]}}) == 2
    ordered = [d["_id"] for d in await coll.find().sort("_id", DESCENDING).to_list()]
    assert ordered == ids[::-1]
    assert await found({"_id": {"$lt": ids[2]}}) == 2
    assert await found({"_id": {"$gt": ids[2]}}) == 2
    assert await found({"_id": {"$ne": ids[2]}}) == 4
    assert await found({"_id": {"$nin": ids[:2]}}) == 3
    deviation(
        "count_documents by an ObjectId _id (equality, $in, $lt, $ne)",
        (
            await coll.count_documents({"_id": ids[2]}),
            await coll.count_documents({"_id": {"$in": ids[:2]}}),
            await coll.count_documents({"_id": {"$lt": ids[2]}}),
            await coll.count_documents({"_id": {"$ne": ids[2]}}),
        ),
        mongodb=(1, 2, 2, 4),
        nx=(0, 0, 0, 5),
    )


async def test_deviation_find_one_and_replace_stringifies_id(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    oid = ObjectId()
    await coll.insert_many([{"_id": oid, "v": 1}, {"_id": 7, "v": 1}, {"_id": "s", "v": 1}])
    replaced = [
        await coll.find_one_and_replace({"_id": key}, {"v": 2}, return_document=ReturnDocument.AFTER)
        for key in (oid, 7, "s")
    ]
    deviation(
        "find_one_and_replace on a non-string _id",
        [type(d["_id"]).__name__ for d in replaced],
        mongodb=["ObjectId", "int", "str"],
        nx=["str", "str", "str"],
    )
    # replace_one keeps the _id as it was
    await coll.replace_one({"_id": "s"}, {"v": 3})
    assert await coll.find_one({"_id": "s"}) == {"_id": "s", "v": 3}


async def test_deviation_distinct_on_id(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    await coll.insert_many([{"_id": "a", "k": 1}, {"_id": "b", "k": 2}])
    observed = await outcome(coll.distinct("_id"))
    deviation(
        "distinct('_id')",
        sorted(observed) if isinstance(observed, list) else observed,
        mongodb=["a", "b"],
        nx="OperationFailure",
    )


async def test_deviation_id_stringified_by_project_and_lookup(db: AsyncDatabase, deviation: Deviation) -> None:
    oid = ObjectId()
    await db.things.insert_one({"_id": oid, "n": 1, "x": 2, "k": "key"})
    await db.others.insert_one({"_id": "o1", "k": "key", "thing": oid})
    projected = await aggregate(db.things, [{"$match": {"n": 1}}, {"$project": {"n": 1}}])
    excluded = await aggregate(db.things, [{"$match": {"n": 1}}, {"$project": {"x": 0}}])
    on_fields = await aggregate(
        db.things, [{"$lookup": {"from": "others", "localField": "k", "foreignField": "k", "as": "o"}}]
    )
    on_id = await aggregate(
        db.things,
        [{"$match": {"n": 1}},
         {"$lookup": {"from": "others", "localField": "_id", "foreignField": "thing", "as": "o"}}],
    )
    deviation(
        "type of an ObjectId _id after $project (inclusion), $project (exclusion), $lookup on other "
        "fields, $lookup with localField _id",
        tuple(type(docs[0]["_id"]).__name__ for docs in (projected, excluded, on_fields, on_id)),
        mongodb=("ObjectId", "ObjectId", "ObjectId", "ObjectId"),
        nx=("str", "ObjectId", "ObjectId", "str"),
    )


async def test_deviation_lookup_on_id_returns_json_text(db: AsyncDatabase, deviation: Deviation) -> None:
    await db.accounts.insert_one({"_id": "u1", "k": "u1"})
    await db.plays.insert_many([{"_id": "p1", "account": "u1"}, {"_id": "p2", "account": "u1"}])

    async def joined(local: str, foreign: str, source: str = "accounts", target: str = "plays") -> str:
        docs = await aggregate(
            db[source], [{"$lookup": {"from": target, "localField": local, "foreignField": foreign, "as": "j"}}]
        )
        return type(docs[0]["j"]).__name__

    pipeline_form = await outcome(
        aggregate(
            db.accounts,
            [{"$lookup": {"from": "plays", "let": {"a": "$_id"},
                          "pipeline": [{"$match": {"$expr": {"$eq": ["$account", "$$a"]}}}], "as": "plays"}},
             {"$project": {"n": {"$size": "$plays"}}}],
        )
    )
    deviation(
        "$lookup: type of the joined array (localField _id; foreignField _id; neither); the let/pipeline form",
        (
            await joined("_id", "account"),
            await joined("account", "_id", source="plays", target="accounts"),
            await joined("k", "account"),
            pipeline_form,
        ),
        mongodb=("list", "list", "list", [{"_id": "u1", "n": 2}]),
        nx=("str", "str", "list", "OperationFailure"),
    )


async def test_deviation_aggregate_match_on_objectid_and_datetime(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    oid = ObjectId()
    await coll.insert_one({"_id": oid, "at": T0})
    await coll.insert_many([{"_id": f"d{i}", "at": T0 + dt.timedelta(days=i)} for i in range(1, 4)])

    async def count(match: dict[str, Any]) -> Any:
        result = await outcome(aggregate(coll, [{"$match": match}, {"$count": "n"}]))
        return result if isinstance(result, str) else (result[0]["n"] if result else 0)

    deviation(
        "aggregate $match then $count: on an ObjectId _id; on datetimes ($gte, $lt, a window, equality)",
        (
            await count({"_id": oid}),
            await count({"at": {"$gte": T0 + dt.timedelta(days=2)}}),
            await count({"at": {"$lt": T0 + dt.timedelta(days=2)}}),
            await count({"at": {"$gte": T0 + dt.timedelta(days=1), "$lt": T0 + dt.timedelta(days=3)}}),
            await count({"at": T0}),
        ),
        mongodb=(1, 2, 2, 2, 1),
        nx=("OperationFailure", 4, 0, 0, 0),
    )
    # find and count_documents are not affected
    assert len(await coll.find({"at": {"$lt": T0 + dt.timedelta(days=2)}}).to_list()) == 2
    assert await coll.count_documents({"at": {"$lt": T0 + dt.timedelta(days=2)}}) == 2


async def test_deviation_group_accumulators_over_datetimes(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    await coll.insert_many([{"_id": f"d{i}", "g": i % 2, "at": T0 + dt.timedelta(days=i)} for i in range(4)])
    overall = await aggregate(coll, [{"$group": {"_id": None, "last": {"$max": "$at"}, "first": {"$min": "$at"}}}])
    grouped = await aggregate(coll, [{"$group": {"_id": "$g", "last": {"$max": "$at"}}}, {"$sort": {"_id": 1}}])
    deviation(
        "$max/$min of datetimes in $group",
        (type(overall[0]["last"]).__name__, type(overall[0]["first"]).__name__, types([g["last"] for g in grouped])),
        mongodb=("datetime", "datetime", ["datetime", "datetime"]),
        nx=("str", "str", ["str", "str"]),
    )


async def test_deviation_transaction_isolation(
    db: AsyncDatabase, mongo_client: AsyncMongoClient, deviation: Deviation
) -> None:
    coll = db.probe
    await coll.insert_one({"_id": "a", "balance": 5})
    async with mongo_client.start_session() as session:
        await session.start_transaction()
        await coll.update_one({"_id": "a"}, {"$inc": {"balance": 100}}, session=session)
        outside = (await coll.find_one({"_id": "a"}))["balance"]
        await session.abort_transaction()
    assert (await coll.find_one({"_id": "a"}))["balance"] == 5
    deviation("a read outside a transaction sees its uncommitted write", outside, mongodb=5, nx=105)


async def test_deviation_index_names_and_directions(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.things
    returned = [
        await coll.create_index("email", unique=True),
        await coll.create_index([("owner", ASCENDING), ("at", DESCENDING)]),
        await coll.create_index("code", name="by_code"),
    ]
    assert returned == ["email_1", "owner_1_at_-1", "by_code"]  # what create_index returns agrees
    info = await coll.index_information()
    deviation(
        "index names and key directions in index_information()",
        sorted((name, tuple(spec["key"])) for name, spec in info.items()),
        mongodb=sorted(
            [("_id_", (("_id", 1),)), ("email_1", (("email", 1),)), ("owner_1_at_-1", (("owner", 1), ("at", -1))),
             ("by_code", (("code", 1),))]
        ),
        nx=sorted(
            [("_id_", (("_id", 1),)), ("idx_things_email", (("email", 1),)),
             ("idx_things_owner_at", (("owner", 1), ("at", 1))), ("idx_things_code", (("code", 1),))]
        ),
    )


async def test_deviation_set_of_scalar_datetime_stores_text(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    await coll.insert_one({"_id": "d", "sub": {}})
    await coll.update_one({"_id": "d"}, {"$set": {"top": T0, "sub.at": T0}})
    await coll.update_one({"_id": "d"}, {"$max": {"latest": T0}})
    await coll.find_one_and_update({"_id": "d"}, {"$set": {"fou": T0}})
    await coll.update_one({"_id": "d"}, {"$set": {"whole": {"at": T0}, "list": [T0]}})
    doc = await coll.find_one({"_id": "d"})
    deviation(
        "$set/$max of a bare datetime (top level, dotted, $max, find_one_and_update); then an embedded document "
        "and an array holding one",
        (types([doc["top"], doc["sub"]["at"], doc["latest"], doc["fou"]]),
         types([doc["whole"]["at"], doc["list"][0]])),
        mongodb=(["datetime"] * 4, ["datetime", "datetime"]),
        nx=(["str"] * 4, ["datetime", "datetime"]),
    )
    deviation(
        "find, then count_documents, of a datetime written by a bare $set",
        (len(await coll.find({"top": T0}).to_list()), await coll.count_documents({"top": T0})),
        mongodb=(1, 1),
        nx=(1, 0),
    )


async def test_deviation_compound_index_with_id_breaks_inserts(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    assert await coll.create_index([("created_at", DESCENDING), ("_id", DESCENDING)]) == "created_at_-1__id_-1"
    try:
        await coll.insert_one({"_id": "x", "created_at": T0})
        observed: Any = "inserted"
    except OperationFailure as exc:
        observed = (type(exc).__name__, exc.code)
    deviation(
        "insert into a collection that has a compound index including _id",
        observed,
        mongodb="inserted",
        nx=("WriteError", 8),
    )


async def test_deviation_dotted_projection(db: AsyncDatabase, deviation: Deviation) -> None:
    coll = db.probe
    await coll.insert_one({"_id": "p", "profile": {"name": "Ann", "bio": "hi"}, "email": "a"})
    deviation(
        "find projection on a dotted path (inclusion, exclusion)",
        (await coll.find_one({"_id": "p"}, {"profile.name": 1}), await coll.find_one({"_id": "p"}, {"profile.bio": 0})),
        mongodb=({"_id": "p", "profile": {"name": "Ann"}}, {"_id": "p", "profile": {"name": "Ann"}, "email": "a"}),
        nx=({"_id": "p", "profile.name": "Ann"}, {"_id": "p", "profile": {"name": "Ann", "bio": "hi"}, "email": "a"}),
    )
