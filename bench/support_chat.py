"""Support chat under load: sustained messages per second through `/support` with durable
writes, against the raw insert rate of the same store, in the same run.

    .venv/bin/python bench/support_chat.py [--conversations 200] [--agents 4] [--duration 15]
        [--generators 2] [--rate 200]

The app is the real `run.py` on its embedded database (nx-27017). Setup goes through the
API: a supervisor makes the team key, agents (super admins) and viewers sign up, each
viewer registers a device key and opens a conversation with the key sealed to the team and
to itself; every conversation is then handed to an agent (automatic assignment, then
claims). Load generators run in processes of their own, on raw websockets (no
python-socketio client in the way):

1. raw: `--conversations` tasks insert message documents of the same shape and indexes as
   `support_messages` straight into the app's database (pymongo over the same Unix socket),
   one at a time each, for `--duration` s: the ceiling the store allows one writer at a time;
2. chat (closed loop): each viewer sends PyNaCl-sealed messages one after another with
   `support.send`, the next when the last is acknowledged, from `--generators` processes;
   one more process holds the agents' sockets, which decrypt each message for its send time;
3. open@R (open loop): the same, but every conversation sends on a fixed schedule that adds
   up to R msg/s whatever the answers, so latency is measured without the senders waiting.

It prints messages/s, p50/p99 from send to acknowledgement and to the agent (the first
second is warm-up), the CPU of the app and its database, the app's CPU per message, and
the ratio chat/raw.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from harness import (
    ROOT,
    CpuMeter,
    app_env,
    create_superuser,
    free_port,
    load_average,
    percentile,
    raise_nofile,
    ratio_line,
    scratch_dir,
    start_script,
    stop,
    wait_until_answers,
)
from sio_load import Group, SioSocket

NAMESPACE = "/support"
PASSWORD = "correct horse battery staple for the bench"  # noqa: S105 (bench accounts on loopback)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# --- setup (this process) -------------------------------------------------------------------


async def setup(base: str, env: dict[str, str], tmp: Path, conversations: int, agents: int) -> dict[str, Any]:
    from nacl.public import PrivateKey, PublicKey, SealedBox
    from nacl.secret import SecretBox
    from nacl.utils import random

    emails = [f"agent{i}@bench.example" for i in range(agents + 1)]
    for email in emails:  # the first is the supervisor
        create_superuser(env, tmp, email, PASSWORD)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        async def login(email: str) -> str:
            resp = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            resp.raise_for_status()
            return resp.json()["access_token"]

        tokens = [await login(e) for e in emails]
        team = PrivateKey.generate()
        made = await http.post("/api/v1/admin/support/team-keys", json={"public_key": b64(bytes(team.public_key))},
                               headers={"Authorization": f"Bearer {tokens[0]}"})
        made.raise_for_status()
        team_id, team_public = made.json()["key_id"], PublicKey(bytes(team.public_key))

        async def viewer(i: int) -> dict[str, Any]:
            signed = await http.post("/api/v1/auth/signup", json={
                "email": f"viewer{i}-{secrets.token_hex(3)}@bench.example", "password": PASSWORD,
                "display_name": f"Viewer {i}"})
            signed.raise_for_status()
            auth = {"Authorization": f"Bearer {signed.json()['access_token']}"}
            device = PrivateKey.generate()
            key = await http.put("/api/v1/me/keys/phone", json={"public_key": b64(bytes(device.public_key))},
                                 headers=auth)
            key.raise_for_status()
            secret = random(SecretBox.KEY_SIZE)
            wrapped = {team_id: b64(SealedBox(team_public).encrypt(secret)),
                       key.json()["key_id"]: b64(SealedBox(device.public_key).encrypt(secret))}
            opened = await http.post("/api/v1/support/conversations",
                                     json={"subject": "bench", "wrapped_keys": wrapped}, headers=auth)
            opened.raise_for_status()
            return {"token": signed.json()["access_token"], "conversation_id": opened.json()["id"], "key": b64(secret)}

        viewers = []
        for start in range(0, conversations, 20):  # argon2 sign-ups, a few at a time
            viewers += await asyncio.gather(*(viewer(i) for i in range(start, min(conversations, start + 20))))
    return {"agents": tokens[1:], "viewers": viewers}


# --- the load generator (a process of its own) ----------------------------------------------


async def raw_inserts(mongo_url: str, db_name: str, tasks: int, duration: float) -> dict[str, Any]:
    from pymongo import ASCENDING, AsyncMongoClient, IndexModel

    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    coll = client[db_name]["bench_raw_messages"]
    await coll.create_indexes([
        IndexModel([("conversation_id", ASCENDING), ("seq", ASCENDING)], unique=True),
        IndexModel([("conversation_id", ASCENDING), ("client_id", ASCENDING)], unique=True)])
    done = 0
    until = time.monotonic() + duration

    async def worker(n: int) -> None:
        nonlocal done
        seq = 0
        while time.monotonic() < until:
            seq += 1
            await coll.insert_one({"conversation_id": f"c{n}", "seq": seq, "client_id": secrets.token_hex(8),
                                   "sender_id": "u", "nonce": b64(bytes(24)), "ciphertext": b64(bytes(200)),
                                   "created_ms": int(time.time() * 1000)})
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(n) for n in range(tasks)))
    elapsed = time.monotonic() - started
    await coll.drop()
    await client.close()
    return {"messages": done, "seconds": elapsed}


class SupportSocket(SioSocket):
    """A raw-websocket Socket.IO client on `/support` (bench/sio_load.py's framing) that
    sends events with acknowledgement ids and times them itself: no python-socketio client
    between the bench and the wire, so the generator costs little next to the app."""

    def __init__(self, host: str, port: int, token: str) -> None:
        super().__init__(Group(), host, port, {"token": token}, False)
        self.next_id = 0
        self.waiting: dict[int, tuple[float, asyncio.Future[Any] | None]] = {}
        self.acks: list[tuple[float, float, bool]] = []  # (sent, latency, ok)
        self.on_event: Any = None

    def emit(self, event: str, data: dict[str, Any], *, keep: bool = False) -> asyncio.Future[Any] | None:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future() if keep else None
        self.waiting[self.next_id] = (time.time(), future)
        body = json.dumps([event, data], separators=(",", ":"))
        self._send(f"42{NAMESPACE},{self.next_id}{body}".encode())
        return future

    async def call(self, event: str, data: dict[str, Any], timeout: float = 60) -> Any:
        future = self.emit(event, data, keep=True)
        assert future is not None
        return await asyncio.wait_for(future, timeout)

    def _packet(self, packet: bytes, now: float) -> None:
        prefix = f"4{{}}{NAMESPACE},".format
        if packet.startswith(prefix(3).encode()):  # an acknowledgement: 43/support,<id>[reply]
            body = packet[len(prefix(3)):]
            start = body.index(b"[")
            sent, future = self.waiting.pop(int(body[:start]), (now, None))
            reply = json.loads(body[start:])[0]
            if future is not None:
                future.set_result(reply)
            else:
                self.acks.append((sent, now - sent, bool(reply.get("ok"))))
        elif packet.startswith(prefix(2).encode()):
            if self.on_event is not None:
                self.on_event(now, packet[len(prefix(2)):])
        elif packet.startswith(b"0"):  # Engine.IO open: connect to the namespace with the token
            self._send(f"40{NAMESPACE},".encode() + self.auth)
        elif packet.startswith(prefix(0).encode()) and not self.ready.done():
            self.live = True
            self.ready.set_result(None)
        elif packet.startswith(prefix(4).encode()):
            self._fail("refused: " + packet.decode(errors="replace")[:80])
        else:
            super()._packet(packet, now)


async def open_sockets(base: str, tokens: list[str]) -> list[SupportSocket]:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    sockets = []
    for token in tokens:
        sock = SupportSocket(host, int(port), token)
        await loop.create_connection(lambda s=sock: s, host, int(port))
        await asyncio.wait_for(sock.ready, 30)
        sockets.append(sock)
    return sockets


async def joined(sockets: list[tuple[SupportSocket, str]]) -> None:
    """Each socket into its conversation's room; an agent joining dozens waits out the
    per-socket event budget as a console would."""
    for sock, conversation_id in sockets:
        for _ in range(30):
            reply = await sock.call("support.join", {"conversation_id": conversation_id})
            if reply.get("ok") or reply.get("error", {}).get("code") != "rate_limited":
                break
            await asyncio.sleep(float(reply["error"].get("details", {}).get("retry_after", 1)))
        if not reply.get("ok"):
            sys.exit(f"support.join failed: {reply}")


def signal_file(path: Path, text: str | None = None) -> str | None:
    """Generators and the driver meet through files in the run's folder: `<out>.ready`
    from each generator, then `go` (the start time) from the driver."""
    if text is not None:  # whole or not at all: the reader polls
        path.with_suffix(".tmp").write_text(text)
        path.with_suffix(".tmp").replace(path)
    return path.read_text() if path.exists() else None


async def wait_for_go(args: argparse.Namespace) -> float:
    signal_file(Path(args.out + ".ready"), "1")
    go = Path(args.out).with_name("go")
    while (start := signal_file(go)) is None:
        await asyncio.sleep(0.05)
    start_at = float(start)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    return start_at


async def agents_part(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """The agents' sockets, in the conversations they were given: each arrival is decrypted
    for the time the viewer sent it."""
    from nacl.secret import SecretBox

    keys = {v["conversation_id"]: SecretBox(base64.b64decode(v["key"])) for v in data["viewers"]}
    sockets = await open_sockets(data["base"], [a["token"] for a in data["agents"]])
    await joined([(sock, cid) for sock, a in zip(sockets, data["agents"], strict=True) for cid in a["conversations"]])
    arrivals: list[tuple[float, float]] = []

    def arrived(now: float, raw: bytes) -> None:
        name, message = json.loads(raw)[:2]
        if name == "support.message":
            box = keys[message["conversation_id"]]
            sent = float(box.decrypt(base64.b64decode(message["ciphertext"]), base64.b64decode(message["nonce"])))
            arrivals.append((sent, now - sent))

    for sock in sockets:
        sock.on_event = arrived
    start_at = await wait_for_go(args)
    await asyncio.sleep(start_at + args.duration + 3 - time.time())  # the last relays
    for sock in sockets:
        sock.close()
    return {"arrivals": arrivals}


async def viewers_part(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """This part's viewers. Closed loop (`--rate 0`): each sends its next message when the
    last one is acknowledged. Open loop: each sends every conversations/rate seconds
    whatever the answers, so the latency is not hidden by waiting."""
    from nacl.secret import SecretBox
    from nacl.utils import random

    mine = data["viewers"][args.part::args.parts]
    sockets = await open_sockets(data["base"], [v["token"] for v in mine])
    await joined([(sock, v["conversation_id"]) for sock, v in zip(sockets, mine, strict=True)])
    start_at = await wait_for_go(args)
    until = start_at + args.duration
    interval = len(data["viewers"]) / args.rate if args.rate else 0.0

    def message(sock: SupportSocket, conversation_id: str, box: SecretBox) -> asyncio.Future[Any] | None:
        t0 = time.time()
        nonce = random(SecretBox.NONCE_SIZE)
        sealed = box.encrypt(f"{t0:.6f}".encode() + b" " * 150, nonce).ciphertext
        return sock.emit("support.send", {"conversation_id": conversation_id, "client_id": secrets.token_hex(8),
                                          "nonce": b64(nonce), "ciphertext": b64(sealed)}, keep=not interval)

    async def talk(sock: SupportSocket, viewer: dict[str, Any], phase: float) -> None:
        box = SecretBox(base64.b64decode(viewer["key"]))
        if not interval:
            while time.time() < until:
                t0 = time.time()
                reply = await asyncio.wait_for(message(sock, viewer["conversation_id"], box), 60)  # type: ignore[arg-type]
                sock.acks.append((t0, time.time() - t0, bool(reply.get("ok"))))
            return
        at = start_at + phase * interval
        while at < until:
            await asyncio.sleep(max(0.0, at - time.time()))
            message(sock, viewer["conversation_id"], box)
            at += interval

    await asyncio.gather(*(talk(sock, v, i / len(mine)) for i, (sock, v) in enumerate(zip(sockets, mine, strict=True))))
    deadline = time.time() + 30
    while any(sock.waiting for sock in sockets) and time.time() < deadline:
        await asyncio.sleep(0.05)
    for sock in sockets:
        sock.close()
    return {"acks": [a for sock in sockets for a in sock.acks]}


def generator_main(args: argparse.Namespace) -> None:
    raise_nofile()
    data = json.loads(Path(args.setup_file).read_text())
    if args.generate == "raw":
        result = asyncio.run(raw_inserts(data["mongo_url"], data["db"], len(data["viewers"]), args.duration))
    elif args.generate == "agents":
        result = asyncio.run(agents_part(args, data))
    else:
        result = asyncio.run(viewers_part(args, data))
    Path(args.out).write_text(json.dumps(result))


# --- the run --------------------------------------------------------------------------------


async def hand_out(base: str, data: dict[str, Any]) -> None:
    """Every conversation to an agent: those automatic assignment gave them when they came
    online, the rest claimed in turn. Recorded per agent for the agents' generator."""
    agents = await open_sockets(base, data["agents"])
    for sock in agents:
        await sock.call("support.presence", {"available": False})
    given: list[list[str]] = [[] for _ in agents]
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for i, token in enumerate(data["agents"]):
            listed = (await http.get("/api/v1/support/conversations",
                                     headers={"Authorization": f"Bearer {token}"})).json()["items"]
            given[i] = [c["id"] for c in listed if not c["queued"]]
    taken = {cid for ids in given for cid in ids}
    waiting = [v["conversation_id"] for v in data["viewers"] if v["conversation_id"] not in taken]
    for n, cid in enumerate(waiting):
        reply = await agents[n % len(agents)].call("support.claim", {"conversation_id": cid})
        if not reply.get("ok"):
            sys.exit(f"support.claim failed: {reply}")
        given[n % len(agents)].append(cid)
    for sock in agents:
        sock.close()
    data["agents"] = [{"token": t, "conversations": ids} for t, ids in zip(data["agents"], given, strict=True)]


def run_generators(tmp: Path, label: str, setup_file: Path, args: argparse.Namespace, rate: float,
                   pids: tuple[int, int | None]) -> tuple[list[dict[str, Any]], list[float], float]:
    """One process for the agents and `--generators` for the viewers; all start sending
    at one moment once every socket has joined. Also the CPU seconds `pids` used from
    then until the senders finished, and that span."""
    run = tmp / label
    run.mkdir()
    env = {**app_env(0, tmp), "PYTHONPATH": str(ROOT)}
    parts = [("agents", 0)] + [("viewers", i) for i in range(args.generators)] if label != "raw" else [("raw", 0)]
    procs = []
    for mode, part in parts:
        out = run / f"{mode}-{part}.json"
        procs.append((out, *start_script(__file__, [
            "--generate", mode, "--setup-file", str(setup_file), "--duration", str(args.duration), "--out", str(out),
            "--part", str(part), "--parts", str(args.generators), "--rate", str(rate)], run, f"gen-{mode}-{part}",
            env=env)))
    if label != "raw":
        deadline = time.monotonic() + 300
        while not all(Path(f"{out}.ready").exists() for out, _, _ in procs):
            if time.monotonic() > deadline or any(p.poll() is not None for _, p, _ in procs):
                break
            time.sleep(0.1)
        signal_file(run / "go", str(time.time() + 0.5))
    meter = CpuMeter(*pids)
    results, used, span = [], [], 0.0
    for out, proc, log in reversed(procs):  # the senders first, the agents' process ends last
        if proc.wait(timeout=args.duration + 600) != 0:
            sys.exit(f"the {label} generator failed:\n{log.read_text(errors='replace')[-3000:]}")
        if not used:
            used, span = meter.used(), meter.elapsed()
        results.append(json.loads(out.read_text()))
    return results, used, span


def chat_figures(results: list[dict[str, Any]], start: float, seconds: float) -> dict[str, Any]:
    """Rate and latencies over the measured window (the first second is warm-up)."""
    acks = [(sent, latency) for r in results for sent, latency, ok in r.get("acks", []) if ok]
    failed = sum(1 for r in results for *_, ok in r.get("acks", []) if not ok)
    arrivals = [(sent, latency) for r in results for sent, latency in r.get("arrivals", [])]
    window = [latency for sent, latency in acks if sent >= start + 1]
    received = [latency for sent, latency in arrivals if sent >= start + 1]
    return {"rate": len(acks) / seconds, "messages": len(acks), "acks": sorted(window), "arrivals": sorted(received),
            "errors": failed}


def main(args: argparse.Namespace) -> None:
    from storage.embedded_mongo import EmbeddedMongo

    with scratch_dir() as tmp:
        port = free_port()
        data_dir = tmp / "app"
        # the bench signs every viewer up from one address, and each sends as fast as it is answered
        env = app_env(port, data_dir, NAMELESS_RATE_LIMIT_AUTH="100000", NAMELESS_RATE_LIMIT_IP="10000000",
                      NAMELESS_RATE_LIMIT_USER="10000000", NAMELESS_SUPPORT_MESSAGES_PER_MINUTE="10000000")
        app, app_log = start_script(str(ROOT / "run.py"), [], tmp, "app", env)
        rows: dict[str, dict[str, Any]] = {}
        database: EmbeddedMongo | None = None
        try:
            wait_until_answers(app, port, "/readyz", "app", app_log, timeout=120)
            base = f"http://127.0.0.1:{port}"
            print(f"setup: {args.conversations} viewers with a conversation each, {args.agents} agents",
                  file=sys.stderr)
            data = asyncio.run(setup(base, env, tmp, args.conversations, args.agents))
            asyncio.run(hand_out(base, data))
            owner = next(data_dir.glob("**/owner.json"))
            # a user of the app's database, never its owner: released before the app stops, so
            # the app stops the database process with itself
            database = EmbeddedMongo(owner.parent, supervise=False)
            data.update(base=base, mongo_url=database.start(), db="nameless")
            setup_file = tmp / "setup.json"
            setup_file.write_text(json.dumps(data))
            db_pid = json.loads(owner.read_text()).get("child_pid")

            load_before = load_average()
            for label, rate in [("raw", 0.0), ("chat", 0.0), *([("open", args.rate)] if args.rate else [])]:
                results, (app_cpu, db_cpu), span = run_generators(tmp, label, setup_file, args, rate,
                                                                  (app.pid, db_pid))
                if label == "raw":
                    figures = {"rate": results[0]["messages"] / results[0]["seconds"], "acks": [], "arrivals": [],
                               "errors": 0, "messages": results[0]["messages"]}
                else:
                    go = float((tmp / label / "go").read_text())
                    figures = chat_figures(results, go, args.duration)
                figures.update(app_cpu=app_cpu / span, db_cpu=db_cpu / span,
                               app_ms=app_cpu * 1000 / max(1, figures["messages"]))
                rows[label] = figures
            load_after = load_average()
        finally:
            if database is not None:
                database.stop()
            stop(app, name="app", log=app_log)
    print(f"{args.conversations} conversations, {args.duration:.0f} s each, {args.generators} viewer generators; "
          f"load average before {load_before}, after {load_after}")
    print(f"{'':8}{'msg/s':>9}{'ack p50':>10}{'ack p99':>10}{'recv p50':>10}{'recv p99':>10}{'errors':>8}"
          f"{'app CPU':>9}{'db CPU':>8}{'app ms/msg':>11}")
    for label, f in rows.items():
        name = f"open@{args.rate:.0f}" if label == "open" else label
        lat = [percentile(f[k], q) * 1000 for k in ("acks", "arrivals") for q in (50, 99)]
        cells = "".join(f"{x:>10.1f}" if x == x else f"{'':>10}" for x in lat)
        per = f"{f['app_ms']:>11.2f}" if label != "raw" else f"{'':>11}"
        print(f"{name:8}{f['rate']:>9.0f}{cells}{f['errors']:>8}{f['app_cpu']:>9.0%}{f['db_cpu']:>8.0%}{per}")
    print(ratio_line("chat/raw", {"msg/s": rows["chat"]["rate"] / rows["raw"]["rate"]}))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conversations", type=int, default=200)
    p.add_argument("--agents", type=int, default=4)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--generators", type=int, default=2, help="viewer load-generator processes")
    p.add_argument("--rate", type=float, default=200.0,
                   help="msg/s of the open-loop run, spread over all conversations (0: none)")
    p.add_argument("--generate", choices=["raw", "agents", "viewers"], help=argparse.SUPPRESS)
    p.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--parts", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--setup-file", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    parsed = _parser().parse_args()
    if parsed.generate:
        generator_main(parsed)
    else:
        main(parsed)
