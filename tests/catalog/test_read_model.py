"""The in-process catalog read model (server/catalog/read_model.py) against the store: after
a sequence of admin edits on one process, another process answers every browse path
(filters, sorts, cursors, search, kids) exactly as the store's own queries do, whether the
edits reach it over pub/sub or only through its poll; a scheduled title appears at its
publish time with no release job; and nothing is answered before the model is built."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import NetworkTimeout

from server.catalog.maturity import ADULT_MAX_LEVEL, KIDS_MAX_LEVEL
from server.catalog.read_model import CatalogReadModel, _Index, entry_of
from server.catalog.text_search import query_keys
from server.core import errors
from server.core.clock import now, to_ms
from server.identity.profiles import CACHE_TTL_S
from storage.catalog.titles import TitleRepository
from storage.state.pubsub import MemoryPubSub
from tests.catalog.helpers import (
    API,
    add_profile,
    category,
    content_manager,
    create_title,
    from_now,
    published_title,
    series,
    viewer_account,
)
from tests.helpers import Finds, eventually, id_ranges

pytestmark = pytest.mark.asyncio

QUERIES: list[dict[str, Any]] = [
    {}, {"sort": "new"}, {"sort": "rating"}, {"genre": "rm-drama"}, {"type": "series"}, {"q": "lantern"},
    {"q": "lan orb"}, {"genre": "rm-comedy", "sort": "new"},
]





async def _api_ids(served: Any, headers: dict[str, str], params: dict[str, Any]) -> list[str]:
    found, cursor = [], None
    while True:
        resp = await served.client.get(f"{API}/titles", headers=headers,
                                       params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        found += [t["id"] for t in resp.json()["items"]]
        cursor = resp.json()["next_cursor"]
        if not cursor:
            return found


async def _store_ids(repo: TitleRepository, params: dict[str, Any], max_level: int) -> list[str]:
    """The same question asked of the store directly (its keyset paging, its visibility query)."""
    found, cursor = [], None
    keys = query_keys(params["q"]) if params.get("q") else None
    while True:
        page = await repo.browse(to_ms(now()), max_level, kind=params.get("type"), genre=params.get("genre"),
                                 keys=keys, sort=params.get("sort", "popular"), limit=2, cursor=cursor)
        found += [str(d["_id"]) for d in page.items]
        cursor = page.next_cursor
        if not cursor:
            return found


async def _edits(served: Any) -> dict[str, str]:
    """Titles made and changed through the admin API of `served`."""
    cm = await content_manager(served)
    await category(served, cm, "rm-drama")
    await category(served, cm, "rm-comedy")
    made = {
        "lantern": await published_title(served, cm, title="Lantern Orbit", genres=["rm-drama"],
                                         maturity_rating="all"),
        "harbour": await published_title(served, cm, title="Harbour", genres=["rm-comedy"], maturity_rating="7+"),
        "series": await published_title(served, cm, type="series", runtime_s=None, title="Orbit Lantern Tales",
                                        genres=["rm-drama", "rm-comedy"], maturity_rating="13+"),
        "renamed": await published_title(served, cm, title="Old Name", genres=["rm-drama"], maturity_rating="all"),
        "archived": await published_title(served, cm, title="Lantern Archive", maturity_rating="all"),
        "closed": await published_title(served, cm, title="Lantern Window", maturity_rating="all"),
        "draft": await create_title(served, cm, title="Lantern Draft", maturity_rating="all"),
    }
    ids = {name: doc["id"] for name, doc in made.items()}

    async def patch(name: str, body: dict[str, Any]) -> None:
        resp = await served.client.patch(f"{API}/admin/titles/{ids[name]}", headers=cm["headers"], json=body)
        assert resp.status_code == 200, resp.text

    await patch("renamed", {"title": "Lantern Renamed", "genres": ["rm-comedy"]})
    await patch("harbour", {"maturity_rating": "18+"})
    await patch("closed", {"available_from": from_now(days=1)})
    resp = await served.client.post(f"{API}/admin/titles/{ids['archived']}/archive", headers=cm["headers"])
    assert resp.status_code == 200, resp.text
    return ids


async def _agrees(reader: Any, ids: dict[str, str]) -> None:
    """`reader` answers every path as the store does, once the last edit has reached it."""
    viewer = await viewer_account(reader)
    kids = await add_profile(reader, viewer, "Kid", kids=True)
    repo = TitleRepository(reader.platform.db)

    async def caught_up() -> bool:  # the last edits: archived gone, renamed found by its new name
        got = await _api_ids(reader, viewer["headers"], {"q": "lantern"})
        return ids["archived"] not in got and ids["renamed"] in got

    await eventually(caught_up, "the reader caught up", timeout=30)
    for params in QUERIES:
        assert await _api_ids(reader, viewer["headers"], params) == await _store_ids(repo, params, ADULT_MAX_LEVEL), \
            params
        kid = {**params, "profile_id": kids.profile_id}
        assert await _api_ids(reader, viewer["headers"], kid) == await _store_ids(repo, params, KIDS_MAX_LEVEL), params
    everything = await _api_ids(reader, viewer["headers"], {})
    assert ids["lantern"] in everything and ids["harbour"] in everything
    for hidden in ("archived", "closed", "draft"):
        assert ids[hidden] not in everything, hidden
    kid_titles = await _api_ids(reader, viewer["headers"], {"profile_id": kids.profile_id})
    assert ids["harbour"] not in kid_titles and ids["lantern"] in kid_titles


async def test_edits_on_one_process_reach_another_over_pubsub(start_server, redis_url) -> None:
    # A poll interval far beyond the test: only the pub/sub message can carry the edits.
    writer = await start_server(REDIS_URL=redis_url, NAMELESS_CATALOG_POLL_S="300")
    reader = await start_server(REDIS_URL=redis_url, NAMELESS_CATALOG_POLL_S="300",
                                NAMELESS_MONGO_DB=writer.runtime.settings.mongo_db)
    await _agrees(reader, await _edits(writer))


async def test_edits_reach_a_process_that_misses_the_messages_through_its_poll(start_server) -> None:
    # No Redis: each process has its own in-process pub/sub, so the reader hears nothing.
    writer = await start_server()
    reader = await start_server(NAMELESS_CATALOG_POLL_S="0.2", NAMELESS_MONGO_DB=writer.runtime.settings.mongo_db)
    await _agrees(reader, await _edits(writer))


async def test_a_scheduled_title_appears_at_its_publish_time_without_the_release_job(start_server) -> None:
    served = await start_server(NAMELESS_JOB_WORKERS="0")
    cm = await content_manager(served)
    viewer = await viewer_account(served)
    publish_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    title = await create_title(served, cm, title="Soon", publish_at=publish_at.isoformat())
    detail = f"{API}/titles/{title['id']}"

    async def listed() -> bool:
        return title["id"] in await _api_ids(served, viewer["headers"], {})

    assert not await listed()
    assert (await served.client.get(detail, headers=viewer["headers"])).status_code == 404
    await eventually(listed, "listed on the reader", timeout=30)
    assert dt.datetime.now(dt.UTC) >= publish_at
    resp = await served.client.get(detail, headers=viewer["headers"])
    assert resp.status_code == 200 and resp.json()["published_at"] is not None


async def test_nothing_is_answered_before_the_model_is_built(server) -> None:
    model = CatalogReadModel(TitleRepository(server.platform.db), MemoryPubSub())
    assert model.state() != "up"
    with pytest.raises(errors.ServiceUnavailable) as raised:
        model.page(to_ms(now()), ADULT_MAX_LEVEL)
    assert raised.value.code == "catalog_loading"
    await model.rebuild()
    assert model.state() == "up" and model.page(to_ms(now()), ADULT_MAX_LEVEL).items == []


async def test_a_model_built_in_chunks_holds_every_title_without_a_range_on_id(server, mongo_url) -> None:
    """Chunks of 2 over 7 titles, so the build crosses chunk boundaries; nx-27017 reads the
    whole collection into Python for a range on `_id`, once per chunk at 100,000 titles."""
    cm = await content_manager(server)
    for n in range(7):
        await published_title(server, cm, title=f"Chunked {n}")
    finds = Finds()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, event_listeners=[finds])
    try:
        model = CatalogReadModel(TitleRepository(client[server.platform.db.name]), MemoryPubSub(), chunk=2)
        await model.rebuild()
    finally:
        await client.close()
    stored = {str(d["_id"]) async for d in server.platform.db.titles.find({}, {"_id": 1})}
    assert len(stored) >= 7 and model.size == len(stored) and set(model.cards(stored)) == stored
    assert len(finds.filters) >= 4 and not id_ranges(finds), finds.filters


async def test_a_profile_turned_kids_is_limited_at_once_here_and_within_a_message_elsewhere(start_server,
                                                                                           redis_url) -> None:
    writer = await start_server(REDIS_URL=redis_url)
    reader = await start_server(REDIS_URL=redis_url, NAMELESS_MONGO_DB=writer.runtime.settings.mongo_db)
    cm = await content_manager(writer)
    grown = await published_title(writer, cm, title="Grown Up", maturity_rating="18+")
    viewer = await viewer_account(writer)
    profile = await add_profile(writer, viewer, "Soon Kid")
    params = {"profile_id": profile.profile_id}
    for served in (writer, reader):  # both processes now hold the account's profiles
        await eventually(lambda s=served: _has(s, viewer, params, grown["id"], True), "grown", timeout=30)
    resp = await writer.client.patch(f"{API}/me/profiles/{profile.profile_id}", headers=viewer["headers"],
                                     json={"kids": True})
    assert resp.status_code == 200, resp.text
    assert not await _has(writer, viewer, params, grown["id"], True)  # at once on the writing process
    # Elsewhere within a pub/sub delivery: well inside the cache's lifetime.
    await eventually(lambda: _has(reader, viewer, params, grown["id"], False), "gone", timeout=CACHE_TTL_S / 2)


async def _has(served: Any, viewer: dict[str, Any], params: dict[str, Any], title_id: str, expected: bool) -> bool:
    return (title_id in await _api_ids(served, viewer["headers"], params)) == expected


async def test_the_writing_process_forgets_the_profiles_before_answering(server) -> None:
    # In-process pub/sub delivers on a later turn of the loop: only the writer's own
    # forgetting can make the very next read fresh.
    viewer = await viewer_account(server)
    profiles = server.runtime.services.profiles
    user_id = viewer["user"]["id"]
    assert not (await profiles.of_user(user_id))[0].get("kids")
    await profiles.update(user_id, viewer["profile_id"], {"kids": True})
    assert bool((await profiles.of_user(user_id))[0].get("kids"))


async def test_a_filtered_browse_follows_an_edit_of_the_filtered_field(server) -> None:
    """Each filter or search combination's sorted titles are kept until the next change: an
    edit that moves a title into or out of it is in the very next page."""
    cm = await content_manager(server)
    await category(server, cm, "rm-thriller")
    viewer = await viewer_account(server)
    first = await published_title(server, cm, title="First", genres=["rm-thriller"])
    other = await published_title(server, cm, title="Other")
    params = {"genre": "rm-thriller", "type": "movie", "sort": "new"}
    assert await _api_ids(server, viewer["headers"], params) == [first["id"]]
    resp = await server.client.patch(f"{API}/admin/titles/{other['id']}", headers=cm["headers"],
                                     json={"genres": ["rm-thriller"]})
    assert resp.status_code == 200, resp.text
    assert set(await _api_ids(server, viewer["headers"], params)) == {first["id"], other["id"]}
    resp = await server.client.patch(f"{API}/admin/titles/{first['id']}", headers=cm["headers"], json={"genres": []})
    assert resp.status_code == 200, resp.text
    assert await _api_ids(server, viewer["headers"], params) == [other["id"]]
    # A search is kept the same way.
    assert await _api_ids(server, viewer["headers"], {"q": "zephyr"}) == []
    resp = await server.client.patch(f"{API}/admin/titles/{other['id']}", headers=cm["headers"],
                                     json={"title": "Zephyr Other"})
    assert resp.status_code == 200, resp.text
    assert await _api_ids(server, viewer["headers"], {"q": "zephyr"}) == [other["id"]]


async def test_a_title_detail_follows_its_title_seasons_and_episodes_here_at_once_and_elsewhere(start_server,
                                                                                              redis_url) -> None:
    # Details are kept per process: every edit must drop them, on the writer before it
    # answers and on the other process by the message (its poll is far beyond the test).
    writer = await start_server(REDIS_URL=redis_url, NAMELESS_CATALOG_POLL_S="300")
    reader = await start_server(REDIS_URL=redis_url, NAMELESS_CATALOG_POLL_S="300",
                                NAMELESS_MONGO_DB=writer.runtime.settings.mongo_db)
    cm = await content_manager(writer)
    viewer = await viewer_account(writer)
    show, episodes = await series(writer, cm, seasons=1, episodes=1, title="Before")
    sid = show["id"]

    async def detail(served: Any) -> tuple[str, list[tuple[int, str, int]]]:
        resp = await served.client.get(f"{API}/titles/{sid}", headers=viewer["headers"])
        assert resp.status_code == 200, resp.text
        body = resp.json()
        return body["title"], [(s["number"], s["name"], s["episode_count"]) for s in body["seasons"]]

    for served in (writer, reader):
        assert await detail(served) == ("Before", [(1, "Season 1", 1)])

    async def edit(method: str, path: str, body: dict[str, Any] | None = None) -> None:
        resp = await writer.client.request(method, f"{API}/admin{path}", headers=cm["headers"], json=body)
        assert resp.status_code in (200, 201, 204), resp.text

    async def both_show(expected: tuple[str, list[tuple[int, str, int]]]) -> None:
        assert await detail(writer) == expected

        async def reader_shows() -> bool:
            return await detail(reader) == expected

        await eventually(reader_shows, f"the reader shows {expected}", timeout=15)

    await edit("PATCH", f"/titles/{sid}", {"title": "After"})
    await both_show(("After", [(1, "Season 1", 1)]))
    await edit("POST", f"/titles/{sid}/seasons", {"number": 2})
    await both_show(("After", [(1, "Season 1", 1)]))  # a season without episodes is not shown
    await edit("POST", "/episodes", {"title_id": sid, "season": 2, "number": 1, "name": "New"})
    await both_show(("After", [(1, "Season 1", 1), (2, "Season 2", 1)]))
    await edit("PATCH", f"/titles/{sid}/seasons/1", {"name": "Pilot season"})
    await both_show(("After", [(1, "Pilot season", 1), (2, "Season 2", 1)]))
    await edit("DELETE", f"/episodes/{episodes[0]['id']}")
    await both_show(("After", [(2, "Season 2", 1)]))
    await edit("POST", f"/titles/{sid}/archive")
    assert (await writer.client.get(f"{API}/titles/{sid}", headers=viewer["headers"])).status_code == 404

    async def gone_on_reader() -> bool:
        return (await reader.client.get(f"{API}/titles/{sid}", headers=viewer["headers"])).status_code == 404

    await eventually(gone_on_reader, "archived on the reader", timeout=15)


class _FailingOnce(TitleRepository):
    """The real repository, except that the read of one chunk fails once, as a chunk does
    when a job's long command holds the store past the driver's timeout."""

    def __init__(self, db: Any, position: int) -> None:
        super().__init__(db)
        self.positions: list[int] = []
        self._fail_at: int | None = position

    async def model_chunk(self, skip: int, limit: int) -> list[dict[str, Any]]:
        self.positions.append(skip)
        if skip == self._fail_at:
            self._fail_at = None
            raise NetworkTimeout("timed out")
        return await super().model_chunk(skip, limit)


async def test_a_build_reads_a_failed_chunk_again_and_goes_on_from_it(server) -> None:
    """At 100,000 titles a build that began again at the first chunk after each timeout never
    finished: the failed chunk is read again and the build continues from there."""
    cm = await content_manager(server)
    for n in range(7):
        await published_title(server, cm, title=f"Resumed {n}")
    repo = _FailingOnce(server.platform.db, position=4)
    model = CatalogReadModel(repo, MemoryPubSub(), chunk=2, poll_s=0.05, start_wait_s=0, retry_s=0.01)
    await model.start()
    try:
        await eventually(lambda: model.state() == "up", "the model built")
    finally:
        await model.stop()
    stored = {str(d["_id"]) async for d in server.platform.db.titles.find({}, {"_id": 1})}
    assert model.size == len(stored) and set(model.cards(stored)) == stored
    assert repo.positions == [0, 2, 4] + list(range(4, len(stored) + 1, 2)), repo.positions


def test_shared_search_words_follow_edits_after_a_build_compacts_them() -> None:
    """A built index holds a word many titles share as a tuple; adding, removing and
    re-wording titles afterwards must find exactly the titles that have the word now."""
    def doc(i: int, keys: list[str], popularity: float = 0.0) -> dict[str, Any]:
        return {"_id": f"t{i:03d}", "type": "movie", "title": f"T{i}", "status": "published",
                "search_keys": keys, "popularity": popularity}

    index = _Index()
    for i in range(40):
        index.put(entry_of(doc(i, ["shared", f"own{i:03d}"] + (["even"] if i % 2 == 0 else []))))
    index.compact()
    assert isinstance(index.word_ids["shared"], tuple) and isinstance(index.word_ids["own003"], str)
    assert index.with_prefix("shar") == {f"t{i:03d}" for i in range(40)}

    index.put(entry_of(doc(1, ["shared", "own001"], popularity=5.0)))  # same words: nothing moves
    assert isinstance(index.word_ids["shared"], tuple)
    assert index.titles["t001"].popularity == 5.0
    index.put(entry_of(doc(2, ["own002"])))  # loses "shared" and "even"
    index.drop("t004")
    index.put(entry_of(doc(40, ["shared", "even"])))
    index.put(entry_of(doc(0, ["shared", "even"])))  # loses only its own word
    expected = {f"t{i:03d}" for i in range(41) if i not in (2, 4)}
    assert index.with_prefix("shared") == expected
    assert index.with_prefix("even") == {f"t{i:03d}" for i in range(0, 41, 2) if i not in (2, 4)}
    assert index.with_prefix("own000") == set() and index.with_prefix("own002") == {"t002"}
    for i in range(0, 41, 2):
        if i not in (2, 4):
            index.drop(f"t{i:03d}")
    index.compact()
    assert index.with_prefix("even") == set() and "even" not in index.word_ids
    assert index.with_prefix("sha") == {f"t{i:03d}" for i in range(1, 40, 2)}
