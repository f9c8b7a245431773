"""Offline evaluation of the recommender on a generated data set with planted tastes.

    .venv/bin/python bench/recommendations.py [--users 3000] [--titles 1500] [--seeds 3] [--json]

The data set: genres; people (cast and crew), each at home in one or two genres; titles
with one or two genres, a few people and an intrinsic appeal (Zipf-like); viewers, each
with a planted taste (two favourite genres and a few favourite people) who watch mostly
what fits their taste, weighted by appeal, and sometimes just what is popular.

The protocol: for every viewer with at least five views, one view chosen at random is
held out; the model is fitted on everything else (popularity too is counted from the
training views only). Hit rate at 10 = the share of viewers whose held-out title is among
their 10 suggestions. The same run scores the popularity-only baseline (the 10 most
popular titles the viewer has not watched) and prints recommender / baseline as a ratio.
It runs server/catalog/recommender.py, the code the recommendation job
(server/catalog/rollups.py) runs.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.catalog.recommender import Activity, Recommender, TitleFacts, Weights

K = 10


@dataclass
class DataSet:
    titles: dict[str, TitleFacts]
    views: dict[str, list[str]]  # user → titles watched, in order


def generate(seed: int, users: int, titles: int, genres: int = 12, people: int = 400,
             taste_share: float = 0.75) -> DataSet:
    rng = random.Random(seed)
    genre_ids = [f"g{n}" for n in range(genres)]
    person_home = {f"p{n}": rng.sample(genre_ids, rng.choice([1, 1, 2])) for n in range(people)}
    people_in = {g: [p for p, home in person_home.items() if g in home] for g in genre_ids}
    facts: dict[str, TitleFacts] = {}
    appeal: dict[str, float] = {}
    for n in range(titles):
        tid = f"t{n}"
        gs = rng.sample(genre_ids, rng.choice([1, 2, 2]))
        pool = [p for g in gs for p in people_in[g]] or list(person_home)
        cast = tuple(dict.fromkeys(rng.choice(pool) for _ in range(rng.randint(3, 5))))
        facts[tid] = TitleFacts(tid, f"Title {n}", tuple(gs), cast, 0.0, 0)
        appeal[tid] = 1.0 / (1 + rng.random() * 30) ** 1.2  # a few hits, a long tail
    all_ids = list(facts)
    all_weights = [appeal[t] for t in all_ids]
    by_genre = {g: [t for t in all_ids if g in facts[t].genres] for g in genre_ids}
    views: dict[str, list[str]] = {}
    for u in range(users):
        favs = rng.sample(genre_ids, 2)
        stars = set(rng.sample([p for g in favs for p in people_in[g]] or list(person_home), 3))
        pool = list(dict.fromkeys(t for g in favs for t in by_genre[g]))
        weights = [appeal[t] * (3.0 if stars & set(facts[t].people) else 1.0) *
                   (2.0 if all(g in favs for g in facts[t].genres) else 1.0) for t in pool]
        count = max(3, min(60, int(rng.lognormvariate(2.3, 0.7))))
        watched: list[str] = []
        for _ in range(count * 3):
            if len(watched) >= count:
                break
            if rng.random() < taste_share and pool:
                pick = rng.choices(pool, weights)[0]
            else:
                pick = rng.choices(all_ids, all_weights)[0]
            if pick not in watched:
                watched.append(pick)
        views[f"u{u}"] = watched
    return DataSet(facts, views)


def split(data: DataSet, seed: int) -> tuple[dict[str, list[str]], dict[str, str]]:
    rng = random.Random(seed + 1)
    train, held = {}, {}
    for user, watched in data.views.items():
        if len(watched) >= 5:
            out = rng.choice(watched)
            held[user] = out
            train[user] = [t for t in watched if t != out]
        else:
            train[user] = list(watched)
    return train, held


def evaluate(data: DataSet, seed: int, weights: dict[str, Weights]) -> dict[str, float]:
    train, held = split(data, seed)
    counts: dict[str, int] = {}
    for watched in train.values():
        for t in watched:
            counts[t] = counts.get(t, 0) + 1
    titles = {tid: TitleFacts(f.id, f.name, f.genres, f.people, float(counts.get(tid, 0)), 0)
              for tid, f in data.titles.items()}
    activities = {u: Activity(u, weights={t: 1.0 for t in w}, seen=set(w)) for u, w in train.items()}
    results: dict[str, float] = {}
    baseline_model = None
    for name, w in weights.items():
        model = Recommender(titles, weights=w).fit(activities.values())
        baseline_model = baseline_model or model
        started = time.perf_counter()
        hits = sum(held[u] in {s.title_id for s in model.suggest(activities[u], K)} for u in held)
        results[name] = hits / len(held)
        results[f"{name}_ms_per_profile"] = (time.perf_counter() - started) * 1000 / len(held)
    assert baseline_model is not None
    hits = sum(held[u] in {s.title_id for s in baseline_model.popular(activities[u], K)} for u in held)
    results["popularity"] = hits / len(held)
    results["evaluated"] = len(held)
    return results


VARIANTS = {
    "recommender": Weights(),
    "co-watch only": Weights(cowatch=1.0, genre=0.0, people=0.0, popularity=0.0),
    "without co-watch": Weights(cowatch=0.0, genre=0.45, people=0.3, popularity=1.0),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--titles", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--taste-share", type=float, default=0.75,
                        help="share of views that follow the planted taste (the rest follow popularity)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = []
    for seed in range(1, args.seeds + 1):
        started = time.perf_counter()
        data = generate(seed, args.users, args.titles, taste_share=args.taste_share)
        result = evaluate(data, seed, VARIANTS)
        result["seconds"] = time.perf_counter() - started
        runs.append(result)
        if not args.json:
            line = "  ".join(f"{name} {result[name]:.3f}" for name in [*VARIANTS, "popularity"])
            print(f"seed {seed}: {int(result['evaluated'])} held-out views  {line}  "
                  f"({result['recommender_ms_per_profile']:.2f} ms/profile, {result['seconds']:.1f} s)")
    summary = {name: statistics.mean(r[name] for r in runs) for name in [*VARIANTS, "popularity"]}
    ratio = summary["recommender"] / summary["popularity"] if summary["popularity"] else math.inf
    ratios = [r["recommender"] / r["popularity"] for r in runs if r["popularity"]]
    if args.json:
        print(json.dumps({"hit_rate_at_10": summary, "ratio": ratio, "ratios": ratios, "runs": runs,
                          "users": args.users, "titles": args.titles}))
        return 0
    print(f"\nhit rate at {K} (mean of {len(runs)} seeds, {args.users} viewers, {args.titles} titles):")
    for name, value in summary.items():
        print(f"  {name:<22} {value:.3f}")
    print(f"\nrecommender / popularity baseline: {ratio:.2f}x  (per seed: "
          + ", ".join(f"{r:.2f}" for r in ratios) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
