"""The co-watch model itself (server/catalog/recommender.py), without the job around it:
the neighbours kept for each title are exactly the pairs' `similarity`, best first, and a
title is never its own neighbour."""

from __future__ import annotations

import random

from server.catalog.recommender import NEIGHBOURS, Activity, Recommender, TitleFacts


def test_each_titles_neighbours_are_its_most_similar_co_watched_titles() -> None:
    rnd = random.Random(5)
    titles = {f"t{n}": TitleFacts(id=f"t{n}", name=f"T{n}", genres=("drama",)) for n in range(120)}
    ids = list(titles)
    activities = []
    for p in range(300):
        picked = rnd.sample(ids, rnd.randint(1, 25))
        activities.append(Activity(profile_id=f"p{p}", weights={t: rnd.choice([1.0, 0.6, -0.3]) for t in picked}))
    model = Recommender(titles).fit(activities)
    liked = [{t for t, w in a.weights.items() if w > 0} for a in activities]
    checked = 0
    for i, neighbours in model._neighbours.items():
        together = {j for seen in liked if i in seen for j in seen} - {i}
        expected = sorted(((j, model.similarity(i, j)) for j in together), key=lambda js: -js[1])[:NEIGHBOURS]
        assert i not in dict(neighbours)
        assert [round(s, 12) for _, s in neighbours] == [round(s, 12) for _, s in expected]
        assert all(s == model.similarity(i, j) and s > 0 for j, s in neighbours)
        checked += len(neighbours)
    assert checked > 1000  # the check covered many pairs, not an empty model
