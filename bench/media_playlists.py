"""Signed HLS playlists per second (master and rendition) against the same playlists unsigned.

    .venv/bin/python bench/media_playlists.py [--segments 1200] [--duration 5] [--rounds 3] [--json]

A two-hour title with 6-second segments: 1200 segments per rendition, five renditions (the
ladder of server/media/ladder.py, 1080p to 240p). The token is in the URL path
(`/media/<token>/assets/<asset>/v<n>/master.m3u8`); every URI inside the playlists is
relative and inherits it. Measurements, each with its baseline in the same run:

1. In process (this process, no I/O): `PlaybackService.authorize` + `PlaybackService.master`
   (a real MediaSigner, an in-memory asset lookup; the rendition list cached after the
   first call, which is checked: one lookup for the whole run) against `master_playlist`
   rendered with the same relative URIs; `authorize` alone (the per-request work of a
   rendition playlist or segment before the file is served); with a Cloud Storage store,
   `authorize` + the cached `stored_playlist`. Each figure is the median of
   `--inproc-rounds` runs of `--inproc-seconds` (bounded in calls).
2. Cloud Storage segments (`--skip-gcs` to leave out): one V4 signed URL per segment
   request, `storage.objects.gcs.GcsMediaStore.signed_url` with a freshly generated RSA-2048
   service-account key (signed locally, no network), median of rounds, wall and CPU per
   URL. What the previous scheme paid per rendition playlist request (every segment of the
   title signed) is derived as `--segments` x that cost, not measured.
3. Over HTTP: `run.py` as a subprocess (its own embedded MongoDB started by this script so
   the asset document can be inserted, a super admin made with `run.py createsuperuser`,
   then through the API: a published movie, a viewer with a complimentary Premium plan,
   `POST /api/v1/playback/<id>/start`). The asset document is inserted with
   `MediaRepository.put_asset` and the files written where the transcode job puts them
   (`<data>/media/assets/<asset>/v1/<rendition>/index.m3u8`). GET the master playlist (URL
   from start, with its real token), the 1080p rendition playlist (URL from the master) at
   one URL, and at `--distinct-tokens` URLs carrying the tokens of as many playback
   sessions, against a bare Tornado app (`--bare-server`, its own process) on the same
   paths (token ignored): the master from memory with the same text, rendition playlists
   with Tornado's plain `StaticFileHandler` on the same directory. Load: `wrk` (`-t1`,
   keep-alive, a Lua script) when installed, else the asyncio generator of
   bench/harness.py, always in its own process; bare and app runs alternate `--rounds`
   times and each figure is the median.

The app stack (`AppStack`: the app with a ready asset) is imported by
bench/media_segments.py; the processes, load generators and figures come from
bench/harness.py.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness import (
    COUNTS,
    CPU,
    P50,
    P99,
    ROOT,
    RPS,
    RUN_PY,
    Column,
    TransferResult,
    app_env,
    create_superuser,
    free_port,
    generator_main,
    header_line,
    load_average_line,
    load_paths,
    mb_s_column,
    median_result,
    pick_generator,
    ratio_figures,
    ratio_line,
    result_line,
    rss_kb,
    run_tornado,
    scratch_dir,
    start_script,
    stop,
    wait_until_answers,
)

sys.path.insert(0, str(ROOT))

from server.media.ladder import AUDIO_CODEC, AUDIO_KBPS, LADDER, even_width
from server.media.signing import MediaGrant, MediaSigner
from server.media.transcode import Rendition, master_playlist, rendition_doc

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
ADMIN_EMAIL = "bench-media-root@example.com"
START_TIMEOUT = 90.0  # seconds for run.py and the bare servers to answer


# --- synthetic title ------------------------------------------------------------------------


def synthetic_renditions(segments: int) -> list[Rendition]:
    """The full ladder for a 1920x1080 source; bitrates = target video + audio (peak +10 %),
    measured as a transcode measures them (frame rate, I-frame bandwidths at ~1/8 of the
    video's), so the master lists I-frame variants and PlaybackService caches it."""
    out = []
    for rung in LADDER:
        average = (rung.video_kbps + AUDIO_KBPS) * 1000
        out.append(Rendition(rung.name, even_width(rung.height, 1920, 1080), rung.height, int(average * 1.1),
                             average, f"{rung.codec},{AUDIO_CODEC}", segments, frame_rate=23.976,
                             iframe_bandwidth=rung.video_kbps * 250, iframe_average_bandwidth=rung.video_kbps * 125))
    return out


def segment_name(i: int) -> str:
    return f"seg_{i:05d}.ts"  # what transcode.ffmpeg_args writes (seg_%05d.ts)


def render_variant(durations: list[float]) -> str:
    """A VOD media playlist as ffmpeg's HLS muxer writes it (relative segment URIs)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{round(max(durations))}",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for i, d in enumerate(durations):
        lines.append(f"#EXTINF:{d:.6f},")
        lines.append(segment_name(i))
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def fake_id(rng_bytes: bytes | None = None) -> str:
    return (rng_bytes or secrets.token_bytes(12)).hex()


# --- the real app with a synthetic, ready asset ---------------------------------------------------


@dataclass
class Seeded:
    asset_id: str
    title_id: str
    prefix: str  # assets/<asset>/v1/
    manifest: str  # /media/<token>/assets/<asset>/v1/master.m3u8, from POST .../start
    master_text: str  # as the app served it
    variants: dict[str, str] = field(default_factory=dict)  # rendition → /media/<token>/.../index.m3u8

    @property
    def token(self) -> str:
        return self.manifest.split("/")[2]

    def rendition_base(self, rendition: str) -> str:
        """/media/<token>/assets/<asset>/v1/<rendition>/ (the master's relative URI, resolved)."""
        return self.variants[rendition].rsplit("/", 1)[0] + "/"


class AppStack:
    """An embedded MongoDB of our own (so we can insert the asset), `run.py` on it, and the
    accounts and title a playback start needs, made through the real API."""

    def __init__(self, tmp: Path, log_level: str = "INFO", profile: str | None = None) -> None:
        self.profile = profile  # write a cProfile of the app process here (indicative only)
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.media_root = self.data_dir / "media"
        self.port = free_port()
        self.log = tmp / "app.log"
        self.log_level = log_level
        self.proc: subprocess.Popen | None = None
        self.mongo = None
        self.password = f"bench {secrets.token_urlsafe(12)} media"
        self.env: dict[str, str] = {}

    def start(self) -> None:
        from storage.embedded_mongo import EmbeddedMongo

        self.mongo = EmbeddedMongo(self.tmp / "mongo")
        url = self.mongo.start()
        self.env = app_env(
            self.port, self.data_dir,
            MONGO_URL=url, NAMELESS_MONGO_DB=f"bench_{secrets.token_hex(5)}",
            NAMELESS_SECRET_KEY=secrets.token_urlsafe(36), NAMELESS_LOG_LEVEL=self.log_level,
            # All load comes from 127.0.0.1. /media/ is not IP-rate-limited anyway (MediaHandler).
            NAMELESS_RATE_LIMIT_IP=str(10**9), NAMELESS_RATE_LIMIT_AUTH=str(10**9),
            NAMELESS_RATE_LIMIT_USER=str(10**9),
        )
        create_superuser(self.env, self.tmp, ADMIN_EMAIL, self.password, timeout=180)
        profiler = ["-m", "cProfile", "-o", str(Path(self.profile).resolve())] if self.profile else []
        self.proc, self.log = start_script(str(RUN_PY), [], self.tmp, "app", self.env, python_args=profiler)
        wait_until_answers(self.proc, self.port, "/readyz", "run.py", self.log, timeout=START_TIMEOUT)

    @property
    def db_pid(self) -> int | None:
        proc = getattr(self.mongo, "_proc", None)
        return proc.pid if proc is not None else None

    def stop(self) -> None:
        stop(self.proc)
        if self.mongo is not None:
            self.mongo.stop()

    async def _insert_asset(self, doc: dict[str, Any]) -> None:
        from pymongo import AsyncMongoClient

        from storage.media.assets import MediaRepository

        client: AsyncMongoClient = AsyncMongoClient(self.env["MONGO_URL"])
        try:
            await MediaRepository(client[self.env["NAMELESS_MONGO_DB"]]).put_asset(doc)
        finally:
            await client.close()

    def rendition_urls(self, seeded: Seeded, rendition: str, count: int) -> list[str]:
        """`count` URLs of one rendition playlist, each with the token of another playback
        session of the same viewer: what `count` players' fetches look like. Signed with the
        app's own media key (derived from NAMELESS_SECRET_KEY as server/app/domains/media.py does),
        with the grant PlaybackService.start gives (the asset version's prefix)."""
        from server.identity.tokens import derive_key

        signer = MediaSigner(derive_key(self.env["NAMELESS_SECRET_KEY"].encode(), "media-urls"))
        grant = signer.verify(seeded.token)  # also checks that our key is the app's key
        urls = []
        for _ in range(count):
            sub = MediaGrant(grant.account_id, fake_id(), grant.prefix, grant.max_height, grant.expires)
            urls.append(f"/media/{signer.sign(sub)}/{seeded.prefix}{rendition}/index.m3u8")
        return urls

    def seed(self, segments: int, segment_seconds: float) -> Seeded:
        """A published movie with a ready two-hour asset, and a viewer's started playback."""
        import httpx

        from server.core.ids import new_id

        renditions = synthetic_renditions(segments)
        asset_id = new_id()
        prefix = f"assets/{asset_id}/v1/"
        version_dir = self.media_root / prefix
        variant_text = render_variant([segment_seconds] * segments)
        for r in renditions:  # the layout TranscodePipeline stores: <prefix><rendition>/index.m3u8 (+ segments)
            (version_dir / r.name).mkdir(parents=True, exist_ok=True)
            (version_dir / r.name / "index.m3u8").write_text(variant_text)
        (version_dir / "master.m3u8").write_text(master_playlist(renditions, lambda name: f"{name}/index.m3u8"))

        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60) as api:
            def ok(resp: httpx.Response, status: int = 200) -> dict[str, Any]:
                if resp.status_code != status:
                    sys.exit(f"{resp.request.method} {resp.request.url.path}: {resp.status_code} {resp.text[:500]}")
                return resp.json()

            root = ok(api.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": self.password}))
            admin = {"Authorization": f"Bearer {root['access_token']}"}
            title_id = ok(api.post("/api/v1/admin/titles", headers=admin, json={
                "type": "movie", "title": f"Bench feature {secrets.token_hex(3)}",
                "runtime_s": int(segments * segment_seconds), "maturity_rating": "all"}), 201)["id"]
            ok(api.post(f"/api/v1/admin/titles/{title_id}/publish", headers=admin, json={"without_media": True}))
            viewer = ok(api.post("/api/v1/auth/signup", json={
                "email": f"bench-viewer-{secrets.token_hex(4)}@example.com", "display_name": "Bench viewer",
                "password": f"bench {secrets.token_urlsafe(12)} viewer"}), 201)
            ok(api.post(f"/api/v1/admin/users/{viewer['user']['id']}/complimentary", headers=admin,
                        json={"plan_id": "premium", "days": 30}))
            now_ms = int(time.time() * 1000)
            asyncio.run(self._insert_asset({
                "_id": asset_id, "content_id": title_id, "status": "ready", "version": 1,
                "renditions": [rendition_doc(r) for r in renditions], "duration": segments * segment_seconds,
                "source": {"width": 1920, "height": 1080, "codec": "h264"}, "upload_id": None,
                "created_ms": now_ms, "ready_ms": now_ms,
            }))
            started = ok(api.post(f"/api/v1/playback/{title_id}/start", json={},
                                  headers={"Authorization": f"Bearer {viewer['access_token']}"}))
            manifest = urlsplit(started["manifest_url"])
            if manifest.query or not manifest.path.endswith(f"/{prefix}master.m3u8"):
                sys.exit(f"unexpected manifest URL {started['manifest_url']!r} (token in the path expected)")
            manifest_path = manifest.path
            master = api.get(manifest_path)
            if master.status_code != 200:
                sys.exit(f"GET master: {master.status_code} {master.text[:500]}")
        base = manifest.path.rsplit("/", 1)[0]
        variants = {line.split("/", 1)[0]: f"{base}/{line}" for line in master.text.splitlines()
                    if line and not line.startswith("#")}
        return Seeded(asset_id, title_id, prefix, manifest_path, master.text, variants)


# --- the bare baseline server -------------------------------------------------------------------


BARE_MASTER = r"/media/[^/]+/(assets/[^/]+/v[0-9]+/master\.m3u8)"
BARE_FILES = r"/media/[^/]+/(.+)"  # /media/<token, ignored>/<key>


def serve_bare_playlists(port: int, root: str) -> None:
    """Bare Tornado on the app's paths, the token ignored: the master's text read once and
    then answered from memory; every other file (rendition playlists) by Tornado's plain
    StaticFileHandler on the same directory (no token, no edge, no log)."""
    import tornado.web

    cache: dict[str, bytes] = {}

    class Preloaded(tornado.web.RequestHandler):
        def get(self, key: str) -> None:
            if key not in cache:
                path = (Path(root) / key).resolve()
                if not path.is_relative_to(Path(root).resolve()) or not path.is_file():
                    raise tornado.web.HTTPError(404)
                cache[key] = path.read_bytes()
            self.set_header("Content-Type", PLAYLIST_TYPE)
            self.finish(cache[key])

    run_tornado(port, [(BARE_MASTER, Preloaded), (BARE_FILES, tornado.web.StaticFileHandler, {"path": root})])


# --- in-process measurement -------------------------------------------------------------------------


def _drive(coro: Any) -> Any:
    """Run a coroutine that never suspends (the lookups below are in memory) without a loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


def calls_per_second(fn, seconds: float, max_calls: int) -> float:
    fn()  # warm
    calls, started = 0, time.perf_counter()
    deadline = started + seconds
    while calls < max_calls:
        fn()
        calls += 1
        if time.perf_counter() >= deadline:
            break
    return calls / (time.perf_counter() - started)


class InMemoryStore:
    """A local-disk-like media store whose files are in memory (so nothing suspends)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    async def read(self, key: str) -> bytes:
        try:
            return self.files[key]
        except KeyError:
            raise OSError(key) from None

    def local_path(self, key: str) -> Path:
        return Path("/nonexistent") / key


class CountingAssets:
    """The asset lookup of MediaRepository, in memory, counting its calls."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.lookups = 0

    async def asset(self, wanted: str) -> dict[str, Any] | None:
        self.lookups += 1
        return self.doc if wanted == self.doc["_id"] else None


def live_access() -> Any:
    """The real per-process access cache over stand-ins that say every stream is live, so
    a warm entry is what is measured (one read per stream per CACHE_TTL_S in the app)."""
    from server.billing.entitlements import Entitlement
    from server.core.clock import now, to_ms
    from server.media.access import MediaAccess
    from storage.state.pubsub import MemoryPubSub

    class Sessions:
        async def get(self, user_id: str, session_id: str) -> dict[str, Any]:
            return {"_id": session_id, "user_id": user_id, "ended": False, "auth_session_id": "s",
                    "heartbeat_ms": to_ms(now()) + 10**9}

    class SignIns:
        async def in_force(self, user_id: str, session_id: str) -> bool:
            return True

    class Entitlements:
        async def current(self, user_id: str) -> Entitlement:
            return Entitlement("premium", 2160, 4, "complimentary")

    return MediaAccess(Sessions(), SignIns(), Entitlements(), MemoryPubSub(),  # type: ignore[arg-type]
                       clock=lambda: 0.0)  # entries never age: the warm path throughout


def make_service(assets: CountingAssets, signer: MediaSigner, store: Any) -> Any:
    """A PlaybackService with only what signed media needs (asset lookup, signer, store);
    built by parameter name, so it follows the constructor as the service evolves."""
    import inspect

    from server.media.playback import PlaybackService

    given = {"media": assets, "signer": signer, "store": store, "access": live_access()}
    params = list(inspect.signature(PlaybackService.__init__).parameters)[1:]
    return PlaybackService(**{name: given.get(name) for name in params})


def service_account_info() -> dict[str, Any]:
    """A service-account key as Google issues it, with a fresh RSA-2048 key (signs locally)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "bench", "private_key_id": "bench", "private_key": pem,
            "client_email": "bench@bench.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token"}


def gcs_store(stored: dict[str, bytes]) -> Any:
    """storage.objects.gcs.GcsMediaStore (real client, real signing) whose reads come from
    memory, so nothing touches the network."""
    from storage.objects.gcs import GcsMediaStore

    class InMemoryGcs(GcsMediaStore):
        async def read(self, key: str) -> bytes:
            return stored[key]

    return InMemoryGcs("bench-bucket", service_account_info())


def gcs_segments(segments: int, seconds: float, rounds: int) -> dict[str, Any]:
    """One segment request with Cloud Storage = one V4 signed URL (GcsMediaStore.signed_url,
    as PlaybackService.segment_url calls it). Median of `rounds` runs of `seconds` (at most
    2000 URLs each); wall and CPU (process time) per URL. The previous scheme signed every
    segment of the rendition for each playlist request: derived as `segments` x this."""
    try:
        import datetime as dt

        from server.media.playback import SEGMENT_URL_TTL
        store = gcs_store({})
    except ImportError as exc:
        return {"skipped": f"{exc}"}
    ttl = SEGMENT_URL_TTL if isinstance(SEGMENT_URL_TTL, dt.timedelta) else dt.timedelta(minutes=10)
    prefix = f"assets/{fake_id()}/v1/1080p/"
    state = {"i": 0}

    def sign_one() -> str:
        state["i"] = (state["i"] + 1) % segments
        return store.signed_url(f"{prefix}{segment_name(state['i'])}", ttl)

    url = sign_one()
    if "X-Goog-Signature=" not in url or "X-Goog-Algorithm=GOOG4-RSA-SHA256" not in url:
        sys.exit(f"unexpected signed URL {url}")
    walls, cpus = [], []
    for _ in range(rounds):
        calls, cpu0, started = 0, time.process_time(), time.perf_counter()
        while calls < 2000:
            sign_one()
            calls += 1
            if time.perf_counter() - started >= seconds:
                break
        walls.append((time.perf_counter() - started) / calls)
        cpus.append((time.process_time() - cpu0) / calls)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"wall_s": wall, "cpu_s": cpu, "walls": walls, "cpus": cpus, "url_chars": len(url),
            "ttl_s": ttl.total_seconds(), "segments": segments,
            "derived_all_segments_wall_s": segments * wall, "derived_all_segments_cpu_s": segments * cpu}


def in_process(segments: int, segment_seconds: float, seconds: float, rounds: int,
               distinct_tokens: int) -> dict[str, Any]:
    renditions = synthetic_renditions(segments)
    asset_id = fake_id()
    prefix = f"assets/{asset_id}/v1/"
    doc = {"_id": asset_id, "status": "ready", "version": 1, "renditions": [rendition_doc(r) for r in renditions]}
    stored_rendition = render_variant([segment_seconds] * segments).encode()
    rendition_key = f"{prefix}1080p/index.m3u8"
    master_key = prefix + "master.m3u8"
    signer = MediaSigner(secrets.token_bytes(32))
    assets = CountingAssets(doc)
    service = make_service(assets, signer, InMemoryStore({rendition_key: stored_rendition}))
    expires = int(time.time()) + 6 * 3600
    account = fake_id()
    # One token per playback session (the grant of PlaybackService.start: the version's prefix).
    tokens = [signer.sign(MediaGrant(account, fake_id(), prefix, 2160, expires)) for _ in range(distinct_tokens)]
    token = tokens[0]
    for t in tokens:  # the first fetch of each stream reads its session (awaits): warm them
        asyncio.run(service.authorize(master_key, t))
    grant = _drive(service.authorize(master_key, token))
    state = {"i": 0}

    def next_token() -> str:
        state["i"] = (state["i"] + 1) % len(tokens)
        return tokens[state["i"]]

    def master_signed() -> str:  # the handler's per-request work for a master
        t = next_token()
        return _drive(service.master(master_key, _drive(service.authorize(master_key, t))))

    def master_only() -> str:
        return _drive(service.master(master_key, grant))

    def master_unsigned() -> str:
        return master_playlist(renditions, lambda name: f"{name}/index.m3u8")

    def authorize_only() -> Any:  # the handler's work for a rendition playlist or segment, before the file
        return _drive(service.authorize(rendition_key, next_token()))

    cases: dict[str, Any] = {"master_signed": master_signed, "master_only": master_only,
                             "master_unsigned": master_unsigned, "authorize": authorize_only}
    gcs_service = None
    try:
        gcs_service = make_service(CountingAssets(doc), signer, gcs_store({rendition_key: stored_rendition}))
    except ImportError:
        pass
    if gcs_service is not None:
        def gcs_rendition() -> bytes:
            return _drive(gcs_service.stored_playlist(rendition_key))  # cached after the first read

        def gcs_rendition_signed() -> bytes:
            _drive(service.authorize(rendition_key, next_token()))
            return gcs_rendition()

        if gcs_rendition() != stored_rendition:
            sys.exit("stored_playlist did not return the stored rendition playlist")
        cases["gcs_rendition"] = gcs_rendition_signed

    # The master is the unsigned text (relative URIs inherit the token); the plan allows all five.
    if master_signed() != master_unsigned():
        sys.exit("PlaybackService.master differs from master_playlist with relative URIs")
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):  # interleaved, so drift in the machine hits every case alike
        for name, fn in cases.items():
            samples[name].append(calls_per_second(fn, seconds, 1_000_000))
    rates = {name: statistics.median(values) for name, values in samples.items()}
    capped = MediaGrant(account, fake_id(), prefix, 720, expires)
    capped_master = _drive(service.master(master_key, capped))
    sizes = {
        "master": len(master_unsigned().encode()), "master_720p_plan": len(capped_master.encode()),
        "master_720p_plan_uris": sum(1 for line in capped_master.splitlines() if line and not line.startswith("#")),
        "rendition": len(stored_rendition), "rendition_gzip6": len(gzip.compress(stored_rendition, 6)),
        "token": len(token),
    }
    return {"rates": rates, "samples": samples, "sizes": sizes, "asset_lookups": assets.lookups,
            "distinct_tokens": distinct_tokens,
            "ratios": {"master": rates["master_signed"] / rates["master_unsigned"],
                       "master_only": rates["master_only"] / rates["master_unsigned"]}}


# --- over HTTP -----------------------------------------------------------------------------------------


KINDS = ("master", "rendition", "rendition_distinct")
# the table of the HTTP runs; the DB CPU only where there is a DB (the app's runs)
HTTP_COLUMNS = (RPS, mb_s_column(8), P50, P99, *COUNTS, *CPU, Column("DB CPU", "db_cpu", 8, ".0%", blank_nan=True))


def over_http(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    stack = AppStack(tmp, args.log_level, args.profile_app)
    bare_port = free_port()
    bare: subprocess.Popen | None = None
    runs: dict[str, list[TransferResult]] = {f"{who}_{kind}": [] for kind in KINDS for who in ("bare", "app")}
    try:
        stack.start()
        seeded = stack.seed(args.segments, args.segment_seconds)
        if len(seeded.variants) != len(LADDER):
            sys.exit(f"the master lists {sorted(seeded.variants)}, expected the full ladder")
        bare, bare_log = start_script(__file__, ["--bare-server", str(bare_port), "--bare-root", str(stack.media_root)],
                                      tmp, "bare")
        wait_until_answers(bare, bare_port, seeded.manifest, "bare tornado", bare_log, timeout=START_TIMEOUT)
        checks = _check_responses(stack.port, bare_port, seeded.manifest, seeded.variants["1080p"], args.segments)
        paths = {"master": [seeded.manifest], "rendition": [seeded.variants["1080p"]],
                 "rendition_distinct": stack.rendition_urls(seeded, "1080p", args.distinct_tokens)}
        targets = {"bare": (bare, bare_port), "app": (stack.proc, stack.port)}
        common = {"generator": args.generator, "connections": args.connections, "tmp": tmp}
        app_rss_kb = {"before": rss_kb(stack.proc.pid, default=-1)}
        if args.warmup > 0:
            for kind in KINDS:
                for proc, port in targets.values():
                    load_paths(proc.pid, port, paths[kind], duration=args.warmup, **common)
        for _ in range(args.rounds):  # alternate, so drift in the machine hits both alike
            for kind in KINDS:
                for who, (proc, port) in targets.items():
                    runs[f"{who}_{kind}"].append(load_paths(proc.pid, port, paths[kind], duration=args.duration,
                                                            db_pid=stack.db_pid if who == "app" else None, **common))
        app_rss_kb["after"] = rss_kb(stack.proc.pid, default=-1)
    finally:
        stop(bare)
        stack.stop()
    results = {name: median_result(rs) for name, rs in runs.items()}
    return {
        "results": {name: asdict(r) for name, r in results.items()},
        "rounds": {name: [asdict(r) for r in rs] for name, rs in runs.items()},
        "checks": checks, "app_rss_kb": app_rss_kb,
        "ratios": {kind: results[f"app_{kind}"].rps / results[f"bare_{kind}"].rps for kind in KINDS},
        "p99_ratios": {kind: results[f"app_{kind}"].p99_ms / results[f"bare_{kind}"].p99_ms for kind in KINDS},
    }


def _check_responses(app_port: int, bare_port: int, master: str, rendition: str, segments: int) -> dict[str, Any]:
    """Both servers answer the same bodies; and what the app sends a gzip-capable player."""
    import httpx

    out: dict[str, Any] = {}
    bodies: dict[str, tuple[bytes, bytes]] = {}
    for name, port in (("app", app_port), ("bare", bare_port)):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            m = c.get(master, headers={"Accept-Encoding": "identity"})
            v = c.get(rendition, headers={"Accept-Encoding": "gzip"})
            if m.status_code != 200 or v.status_code != 200:
                sys.exit(f"{name}: master {m.status_code}, rendition {v.status_code}")
            uris = [line for line in v.text.splitlines() if line and not line.startswith("#")]
            if len(uris) != segments or any("/" in u or "?" in u for u in uris):
                sys.exit(f"{name}: the rendition lists {len(uris)} URIs, expected {segments} bare file names")
            revalidated = c.get(rendition, headers={"If-None-Match": v.headers.get("Etag", "")})
            bodies[name] = (m.content, v.content)
            out[name] = {"master_bytes": len(m.content), "rendition_bytes": int(v.headers.get("Content-Length") or 0),
                         "rendition_content_encoding": v.headers.get("Content-Encoding", "identity"),
                         "rendition_content_type": v.headers.get("Content-Type"),
                         "rendition_cache_control": v.headers.get("Cache-Control"),
                         "master_cache_control": m.headers.get("Cache-Control"),
                         "rendition_etag": v.headers.get("Etag"), "revalidate_status": revalidated.status_code,
                         "rendition_header_bytes": sum(len(k) + len(x) + 4 for k, x in v.headers.items())}
    if bodies["app"] != bodies["bare"]:
        sys.exit("the app and the bare server answered different master or rendition bodies")
    return out


# --- main ----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--segments", type=int, default=1200, help="segments per rendition (default 1200: 2 h of 6 s)")
    p.add_argument("--segment-seconds", type=float, default=6.0, help="segment duration (default 6)")
    p.add_argument("--inproc-seconds", type=float, default=0.5, help="seconds per in-process case per round")
    p.add_argument("--inproc-rounds", type=int, default=5, help="in-process rounds, median (default 5)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of HTTP load per server and kind (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="alternated bare/app HTTP rounds, median (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured HTTP load first (default 1)")
    p.add_argument("--connections", type=int, default=50, help="concurrent keep-alive connections (default 50)")
    p.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--distinct-tokens", type=int, default=2000,
                   help="tokens of distinct playback sessions, in turn (default 2000)")
    p.add_argument("--log-level", default="INFO", help="NAMELESS_LOG_LEVEL of the app (default INFO, as shipped)")
    p.add_argument("--profile-app", metavar="FILE", help="run the app under cProfile, stats to FILE (indicative)")
    p.add_argument("--skip-gcs", action="store_true", help="skip the cloud-storage (V4 signed URL) measurement")
    p.add_argument("--skip-http", action="store_true", help="only the in-process measurements")
    p.add_argument("--skip-inprocess", action="store_true", help="only the HTTP measurement")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--bare-root", help=argparse.SUPPRESS)
    p.add_argument("--generate", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--paths-file", help=argparse.SUPPRESS)
    p.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    return p


def main() -> int:
    args = _parser().parse_args()
    if args.bare_server is not None:
        serve_bare_playlists(args.bare_server, args.bare_root)
        return 0
    if args.generate is not None:  # the generator process, by hand (the bench starts bench/harness.py --generate)
        return generator_main(args.generate, json.loads(Path(args.paths_file).read_text()), args.connections,
                              args.duration, args.once)
    args.generator = pick_generator(args.generator)

    out: dict[str, Any] = {"segments": args.segments, "segment_seconds": args.segment_seconds,
                           "renditions": len(LADDER), "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
    if not args.skip_inprocess:
        out["in_process"] = in_process(args.segments, args.segment_seconds, args.inproc_seconds, args.inproc_rounds,
                                       args.distinct_tokens)
    if not args.skip_gcs:
        out["gcs_segment"] = gcs_segments(args.segments, args.inproc_seconds, args.inproc_rounds)
    if not args.skip_http:
        out.update(generator=args.generator, connections=args.connections, duration=args.duration,
                   rounds=args.rounds, distinct_tokens=args.distinct_tokens)
        with scratch_dir() as tmp:
            out["http"] = over_http(args, tmp)
    out["loadavg_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(out))
    else:
        report(out)
    http = out.get("http")
    if http and any(r["non2xx"] or r["errors"] for r in http["results"].values()):
        print("warning: non-2xx responses or socket errors; figures are suspect", file=sys.stderr)
        return 1
    return 0


def report(out: dict[str, Any]) -> None:
    print(f"Playlists of a {out['segments'] * out['segment_seconds'] / 3600:g} h title: {out['segments']} segments"
          f" of {out['segment_seconds']:g} s per rendition, {out['renditions']} renditions, {out['cpus']} CPUs")
    print(load_average_line(out["loadavg_start"], out["loadavg_end"]))
    ip = out.get("in_process")
    if ip:
        r, s = ip["rates"], ip["sizes"]
        print(f"\nIn process (calls/s, median of rounds; one core; {ip['distinct_tokens']} session tokens in turn):")
        rows = [
            ("master signed (authorize + PlaybackService.master, cached)", r["master_signed"], s["master"]),
            ("  PlaybackService.master alone", r["master_only"], s["master"]),
            ("master unsigned (master_playlist, same relative URIs)", r["master_unsigned"], s["master"]),
            ("authorize alone (rendition playlist / segment token check)", r["authorize"], 0),
        ]
        if "gcs_rendition" in r:
            rows.append(("Cloud Storage rendition (authorize + cached stored_playlist)", r["gcs_rendition"],
                         s["rendition"]))
        for name, rate, size in rows:
            print(f"  {name:64}{rate:>10,.0f}/s{1e6 / rate:>9.1f} µs" + (f"{size:>10,} B" if size else ""))
        q = ip["ratios"]
        print(f"  ratio signed/unsigned master: {q['master']:.2f} (master alone {q['master_only']:.2f});"
              f" asset lookups during the whole run: {ip['asset_lookups']}")
        print(f"  rendition playlist as stored: {s['rendition']:,} B (gzip -6: {s['rendition_gzip6']:,} B);"
              f" master {s['master']} B, for a 720p plan {s['master_720p_plan']} B"
              f" ({s['master_720p_plan_uris']} renditions); token {s['token']} chars")
    g = out.get("gcs_segment")
    if g and "skipped" not in g:
        print(f"\nCloud Storage segment: one V4 signed URL (GcsMediaStore.signed_url, RSA-2048, no network):"
              f" {g['wall_s'] * 1000:.2f} ms wall, {g['cpu_s'] * 1000:.2f} ms CPU (median of {len(g['walls'])}"
              f" rounds; {g['url_chars']} chars, valid {g['ttl_s']:.0f} s)")
        print(f"  derived, not measured: signing all {g['segments']} segments (the previous scheme, per rendition"
              f" playlist request) = {g['derived_all_segments_wall_s']:.2f} s wall,"
              f" {g['derived_all_segments_cpu_s']:.2f} s CPU")
    elif g:
        print(f"\nCloud Storage measurement skipped: {g['skipped']}")
    http = out.get("http")
    if http:
        print(f"\nOver HTTP: {out['generator']}, {out['connections']} connections, {out['duration']:g} s per run,"
              f" median of {out['rounds']} alternated rounds; rendition_distinct = {out['distinct_tokens']} URLs"
              f" with tokens of distinct playback sessions, in turn")
        print(header_line(HTTP_COLUMNS, 24))
        for kind in KINDS:
            for who in ("bare", "app"):
                print(result_line(f"{who}_{kind}", http["results"][f"{who}_{kind}"], HTTP_COLUMNS, 24))
        print("(CPU: share of one core used by the server, the load generator and the app's MongoDB process)")
        print(ratio_line("app/bare req/s", http["ratios"]) + "; p99: " + ratio_figures(http["p99_ratios"]))
        c = http["checks"]
        a, b = c["app"], c["bare"]
        print(f"bodies identical: master {a['master_bytes']:,} B, rendition {a['rendition_bytes']:,} B"
              f" (app Content-Encoding with Accept-Encoding gzip: {a['rendition_content_encoding']});"
              f" rendition headers app {a['rendition_header_bytes']} B / bare {b['rendition_header_bytes']} B")
        print(f"app: rendition Cache-Control {a['rendition_cache_control']!r}, ETag {a['rendition_etag']}"
              f" (If-None-Match → {a['revalidate_status']}); master Cache-Control {a['master_cache_control']!r}")
        rss = http["app_rss_kb"]
        print(f"app RSS: {rss['before'] / 1024:.0f} MB before the load, {rss['after'] / 1024:.0f} MB after")


if __name__ == "__main__":
    sys.exit(main())
