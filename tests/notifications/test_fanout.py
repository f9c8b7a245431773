"""A new episode reaches 10,000 followers: each gets exactly one inbox entry, the 1,000 with
a phone exactly one push at the FCM stand-in, and running the
fan-out job again sends nobody anything twice. (Pushing to all 10,000 phones is measured in
bench/notifications_delivery.py: it takes minutes on a loaded 2-core machine.)"""

from __future__ import annotations

import asyncio
import json

from bson import ObjectId

from server.core.clock import now, to_ms
from tests.catalog.helpers import API, content_manager, series
from tests.helpers import eventually
from tests.notifications.test_delivery import fakes  # noqa: F401 (fixture)

FOLLOWERS = 10_000
PHONES = 1_000


async def test_a_release_reaches_ten_thousand_followers_once_each(start_server, fakes, tmp_path) -> None:  # noqa: F811
    key = tmp_path / "firebase.json"
    key.write_text(json.dumps(fakes.service_account()))
    served = await start_server(**fakes.env(str(key)))
    db = served.platform.db
    cm = await content_manager(served)
    show, _ = await series(served, cm, seasons=1, episodes=1, title="Long Night")
    at = to_ms(now())
    users = [str(ObjectId()) for _ in range(FOLLOWERS)]
    # Half watched the series recently, half (and a quarter of the watchers) have it on a list.
    watched = users[: FOLLOWERS // 2]
    listed = users[FOLLOWERS // 2:] + users[: FOLLOWERS // 8]
    await db.title_progress.insert_many([
        {"_id": f"p{u}:{show['id']}", "profile_id": f"p{u}", "user_id": u, "title_id": show["id"],
         "state": "watching", "last_watched_ms": at} for u in watched])
    await db.watchlist.insert_many([
        {"_id": f"p{u}:{show['id']}", "profile_id": f"p{u}", "user_id": u, "title_id": show["id"], "added_ms": at}
        for u in listed])
    stale = str(ObjectId())  # watched too long ago to count as a follower
    await db.title_progress.insert_one({"_id": f"p{stale}:{show['id']}", "profile_id": f"p{stale}", "user_id": stale,
                                        "title_id": show["id"], "state": "watching",
                                        "last_watched_ms": at - 200 * 86_400_000})
    await db.devices.insert_many([{"_id": f"tok-{u}", "user_id": u, "platform": "android", "registered_ms": at,
                                   "updated_ms": at} for u in [*users[::FOLLOWERS // PHONES], stale]])

    resp = await served.client.post(f"{API}/admin/episodes", headers=cm["headers"], json={
        "title_id": show["id"], "season": 1, "number": 2, "name": "Dawn", "runtime_s": 1000})
    assert resp.status_code == 201, resp.text

    async def all_sent():
        return await db.outbox.count_documents({"kind": "new_episode", "status": "sent"}) == PHONES

    await eventually(all_sent, timeout=240)
    counts = fakes.per_token()
    assert set(counts) == {f"tok-{u}" for u in users[::FOLLOWERS // PHONES]} and set(counts.values()) == {1}

    # The job runs again (a worker died after it finished): nothing new is written or sent.
    job = await db.jobs.find_one({"kind": "notifications.release", "payload.episode_id": {"$ne": None}})
    result = await served.runtime.services.release_notifier.run(job, lambda _: asyncio.sleep(0))
    assert result == {"audience": FOLLOWERS, "notified": 0}
    assert await db.notifications.count_documents({"kind": "new_episode"}) == FOLLOWERS
    assert await db.outbox.count_documents({"channel": "push", "kind": "new_episode"}) == PHONES
    assert set(fakes.per_token().values()) == {1}
