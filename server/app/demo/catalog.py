"""The demo catalog: genres, a staff-picks collection, movies and series with seasons and
episodes, cast and crew, generated SVG artwork, and a few synthetic viewers whose history
gives the home page trending titles and recommendations. `python run.py demo` calls
`load_demo`; running it again adds only what is missing.

Titles are made as drafts, then every movie and episode gets a really transcoded clip (a
few generated clips, shared between titles: `demo.media`), which sets its runtime to the
clip's; only then are they published, so every published demo title can be played.
"""

from __future__ import annotations

import base64
import colorsys
import datetime as dt
import hashlib
import random
import textwrap
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from server.app.demo.media import attach_clips
from server.catalog import rollups
from server.catalog.admin import ContentAdminService
from server.catalog.viewers import Viewer
from server.core import errors
from server.core.clock import now

if TYPE_CHECKING:
    from server.app.wiring import Services

GENRES = [
    ("action", "Action"), ("comedy", "Comedy"), ("drama", "Drama"), ("sci-fi", "Science fiction"),
    ("documentary", "Documentary"), ("animation", "Animation"), ("thriller", "Thriller"), ("family", "Family"),
]
COLLECTIONS = [("staff-picks", "Staff picks")]

# (type, title, year, genres, rating, cast, director, synopsis, seasons x episodes)
CATALOG: list[tuple[str, str, int, list[str], str, list[str], str, str, tuple[int, int]]] = [
    ("movie", "The Last Lighthouse", 2021, ["drama"], "13+", ["Maren Solberg", "Idris Okafor"], "Léa Fontaine",
     "A keeper refuses to leave the island when the lamp is automated.", (0, 0)),
    ("movie", "Orbitfall", 2023, ["sci-fi", "action"], "13+", ["Kai Nakamura", "Sofia Ruiz"], "Bram de Vries",
     "A salvage crew finds a station that should not exist.", (0, 0)),
    ("movie", "Paper Boats", 2019, ["family", "animation"], "all", ["Nora Quist", "Tomás Herrera"], "Amélie Roux",
     "Two siblings race paper boats down a flooded city.", (0, 0)),
    ("movie", "Night Shift at Café Ömer", 2022, ["comedy"], "7+", ["Ömer Aydin", "Hana Sato"], "Jonas Berg",
     "The quietest café in town gets its strangest customers after midnight.", (0, 0)),
    ("movie", "Cold Ledger", 2020, ["thriller", "drama"], "16+", ["Idris Okafor", "Elena Marsh"], "Léa Fontaine",
     "An auditor follows a missing million through a snowed-in town.", (0, 0)),
    ("movie", "Salt and Silver", 2018, ["documentary"], "all", ["Narrated by Maren Solberg"], "Per Lindqvist",
     "The last salt farmers of the northern coast.", (0, 0)),
    ("movie", "Glasshouse", 2024, ["thriller", "sci-fi"], "16+", ["Sofia Ruiz", "Kai Nakamura"], "Bram de Vries",
     "A smart home decides who may leave.", (0, 0)),
    ("movie", "Kite Season", 2017, ["family", "comedy"], "all", ["Tomás Herrera", "Hana Sato"], "Amélie Roux",
     "A town bets everything on its annual kite festival.", (0, 0)),
    ("movie", "Rust Belt Requiem", 2016, ["drama"], "16+", ["Elena Marsh", "Jonas Berg"], "Per Lindqvist",
     "A brass band plays on as the factory closes.", (0, 0)),
    ("movie", "Velocity Protocol", 2023, ["action", "thriller"], "16+", ["Kai Nakamura", "Idris Okafor"],
     "Jonas Berg", "An off-duty courier carries a package everyone wants.", (0, 0)),
    ("movie", "The Whale Road", 2015, ["documentary", "family"], "all", ["Narrated by Nora Quist"],
     "Per Lindqvist", "Following humpbacks from the tropics to the ice.", (0, 0)),
    ("movie", "Tiny Titans", 2022, ["animation", "family", "comedy"], "all", ["Hana Sato", "Tomás Herrera"],
     "Amélie Roux", "Garden insects stage an olympics.", (0, 0)),
    ("series", "Harbour Lights", 2020, ["drama"], "13+", ["Maren Solberg", "Elena Marsh"], "Léa Fontaine",
     "Three families and one fishing harbour across a decade.", (2, 4)),
    ("series", "Starward", 2022, ["sci-fi", "action"], "13+", ["Sofia Ruiz", "Kai Nakamura"], "Bram de Vries",
     "A generation ship wakes its crew a century early.", (2, 5)),
    ("series", "Little Inventors", 2021, ["animation", "family"], "all", ["Nora Quist", "Hana Sato"],
     "Amélie Roux", "Every week, a new invention goes gloriously wrong.", (1, 6)),
    ("series", "The Audit", 2023, ["thriller", "drama"], "16+", ["Idris Okafor", "Jonas Berg"], "Per Lindqvist",
     "Forensic accountants unpick a bank's last honest year.", (1, 5)),
    ("series", "Open Kitchen", 2019, ["comedy"], "7+", ["Ömer Aydin", "Tomás Herrera"], "Jonas Berg",
     "A restaurant with no walls and far too many opinions.", (2, 3)),
    ("series", "Wild Latitudes", 2021, ["documentary"], "all", ["Narrated by Maren Solberg"], "Per Lindqvist",
     "Life at the edges of the map.", (1, 4)),
]
SCHEDULED = ("movie", "Orbitfall II: Perihelion", 2025, ["sci-fi", "action"], "13+",
             ["Kai Nakamura", "Sofia Ruiz"], "Bram de Vries", "The salvage crew returns, closer to the sun.", (0, 0))
STAFF_PICKS = {"The Last Lighthouse", "Harbour Lights", "Paper Boats", "Salt and Silver"}
LANGUAGES = ["en", "fr", "de", "es", "ja"]


def _hue(text: str, salt: str) -> float:
    return int(hashlib.sha256((salt + text).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def _hex(h: float, lightness: float, saturation: float = 0.55) -> str:
    r, g, b = colorsys.hls_to_rgb(h, lightness, saturation)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def artwork_svg(title: str, subtitle: str, width: int, height: int) -> str:
    """A poster-like SVG: a gradient in colours derived from the title, and its name."""
    h1, h2 = _hue(title, "a"), _hue(title, "b")
    lines = textwrap.wrap(title, 14 if width < height else 26)[:4]
    size = max(18, min(40, int(width / 9)))
    top = height * 0.62 - (len(lines) - 1) * size * 0.6
    text = "".join(
        f'<text x="{width / 2:.0f}" y="{top + i * size * 1.2:.0f}" font-size="{size}" text-anchor="middle" '
        f'font-family="Helvetica, Arial, sans-serif" font-weight="700" fill="#fff">{escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="{_hex(h1, 0.45)}"/>'
        f'<stop offset="1" stop-color="{_hex(h2, 0.18)}"/></linearGradient></defs>'
        f'<rect width="100%" height="100%" fill="url(#g)"/>'
        f'<circle cx="{width * 0.78:.0f}" cy="{height * 0.22:.0f}" r="{min(width, height) * 0.18:.0f}" '
        f'fill="{_hex(h2, 0.7)}" fill-opacity="0.35"/>{text}'
        f'<text x="{width / 2:.0f}" y="{height - 24}" font-size="14" text-anchor="middle" '
        f'font-family="Helvetica, Arial, sans-serif" fill="#ffffffcc">{escape(subtitle)}</text></svg>'
    )


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _title_fields(entry: tuple, genre_names: dict[str, str]) -> dict[str, Any]:
    kind, name, year, genres, rating, cast, director, synopsis, _ = entry
    label = " · ".join(genre_names[g] for g in genres)
    rng = random.Random(name)
    audio = ["en", *rng.sample(LANGUAGES[1:], 2)]
    return {
        "type": kind, "title": name, "year": year, "genres": genres, "maturity_rating": rating,
        "synopsis": synopsis,
        "categories": ["staff-picks"] if name in STAFF_PICKS else [],
        "languages": ["en"],
        "audio_tracks": [{"language": lang, "label": None, "kind": "main"} for lang in audio],
        "subtitle_tracks": [{"language": lang, "label": None, "kind": "subtitles"} for lang in LANGUAGES],
        "cast": [{"name": person, "character": None} for person in cast],
        "crew": [{"name": director, "job": "Director"}],
        "artwork": {"poster": data_uri(artwork_svg(name, label, 300, 450)),
                    "backdrop": data_uri(artwork_svg(name, label, 640, 360))},
    }


async def load_demo(services: Services, *, viewers: int = 24, seed: int = 7, clips: int = 3) -> dict[str, Any]:
    """Load the demo catalog into the services' database; returns what was created
    (`clips`: clips transcoded, `playable`: movies and episodes that got media)."""
    content = services.content_admin
    created = {"categories": 0, "titles": 0, "episodes": 0, "viewers": 0, "clips": 0, "playable": 0}
    for position, (slug, name) in enumerate(GENRES):
        created["categories"] += await _category(content, slug, name, "genre", position)
    for slug, name in COLLECTIONS:
        created["categories"] += await _category(content, slug, name, "collection", 0)
    genre_names = dict(GENRES)
    existing = {t["title"]: t for t in (await content.list_titles(status=None, kind=None, q=None, limit=100,
                                                                  cursor=None)).items}
    demo: list[dict[str, Any]] = []
    for entry in [*CATALOG, SCHEDULED]:
        if entry[1] in existing:
            demo.append(existing[entry[1]])
            continue
        fields = _title_fields(entry, genre_names)
        if entry is SCHEDULED:
            fields["publish_at"] = now() + dt.timedelta(days=7)
        title = await content.create_title(None, fields, ip="demo")
        demo.append(title)
        created["titles"] += 1
        seasons, episodes = entry[8]
        for season in range(1, seasons + 1):
            await content.add_season(None, title["id"], {"number": season, "name": f"Season {season}"}, ip="demo")
            for number in range(1, episodes + 1):
                name = f"Chapter {number + (season - 1) * episodes}"
                still = data_uri(artwork_svg(f"{entry[1]} {season}x{number}", name, 640, 360))
                await content.create_episode(None, {
                    "title_id": title["id"], "season": season, "number": number, "name": name,
                    "synopsis": f"{entry[1]}, season {season}, episode {number}.", "artwork": {"still": still},
                }, ip="demo")
                created["episodes"] += 1
    unplayable = []
    for title in demo:
        if title["type"] == "movie":
            unplayable += [] if title["playable"] else [title["id"]]
            continue
        page = await content.list_episodes(title["id"], None, 100, None)
        unplayable += [e["id"] for e in page.items if not e["playable"]]
    created["clips"], created["playable"] = await attach_clips(services, unplayable, clips=clips)
    published: list[dict[str, Any]] = []
    for title in demo:
        if title["status"] == "draft":
            published.append(await content.publish(None, title["id"], ip="demo"))
    if published and viewers:
        created["viewers"] = await _demo_viewers(services, published, viewers, seed)
        await rollups.trending(services.rollup_sources.titles)
        await rollups.recommend(services.rollup_sources)
    return created


async def _category(content: ContentAdminService, slug: str, name: str, kind: str, position: int) -> int:
    try:
        await content.create_category(None, {"slug": slug, "name": name, "kind": kind, "position": position},
                                      ip="demo")
    except errors.Conflict:
        return 0
    return 1


async def _demo_viewers(services: Services, titles: list[dict[str, Any]], count: int, seed: int) -> int:
    """Synthetic viewers with a taste each (two genres), so titles have views, the trending
    row has an order and the recommender has co-watch data. They cannot sign in."""
    rng = random.Random(seed)
    genres = [g for g, _ in GENRES]
    for n in range(count):
        email = f"demo-viewer-{seed}-{n}@example.invalid"
        try:
            user = await services.accounts.create_user(email, f"Demo viewer {n}", password=None,
                                                       email_verified=True)
        except errors.Conflict:
            continue
        profile = (await services.profiles.list(str(user["_id"])))[0]
        viewer = Viewer(user_id=str(user["_id"]), profile_id=profile["id"], name=profile["name"])
        taste = set(rng.sample(genres, 2))
        liked = [t for t in titles if taste & set(t["genres"])]
        others = [t for t in titles if t not in liked]
        picks = rng.sample(liked, min(len(liked), rng.randint(2, 5))) + rng.sample(others, min(len(others), 1))
        for title in picks:
            content_id = title["id"]
            duration = float(title.get("runtime_s") or 0)
            if title["type"] == "series":
                page = await services.content_admin.list_episodes(title["id"], 1, 1, None)
                if not page.items:
                    continue
                content_id, duration = page.items[0]["id"], float(page.items[0]["runtime_s"] or 0)
            share = rng.choice([0.3, 0.6, 0.95])
            await services.history.record_progress(viewer, content_id, duration * share, duration)
    return count
