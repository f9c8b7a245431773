"""Support chat under load: sustained messages per second through `/support` with durable
writes, against the raw insert rate of the same store, in the same run.

    .venv/bin/python bench/support_chat.py [--conversations 200] [--agents 4] [--duration 20]

The app is the real `run.py` on its embedded database (nx-27017). Setup goes through the
API: a supervisor makes the team key, agents (super admins) and viewers sign up, each
viewer registers a device key and opens a conversation with the key sealed to the team and
to itself. Then, in a load-generator process of its own:

1. raw: `--conversations` tasks insert message documents of the same shape and indexes as
   `support_messages` straight into the app's database (pymongo over the same Unix socket),
   one at a time each, for `--duration` s: the ceiling the store allows;
2. chat: the agents claim and join every conversation, and each viewer sends PyNaCl-sealed
   messages one after another over Socket.IO (`support.send`: membership check, client-id
   check, sequence number, durable insert, acknowledgement, relay). Each acknowledgement
   and each arrival at the agent (who decrypts the send time out of the message) is timed.

It prints messages/s of both, the chat's p50/p99 from send to acknowledgement and from
send to the recipient, the CPU of the app and its database, and the ratio chat/raw.
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


async def chat_load(base: str, setup_data: dict[str, Any], duration: float) -> dict[str, Any]:
    import socketio
    from nacl.secret import SecretBox
    from nacl.utils import random

    keys = {v["conversation_id"]: SecretBox(base64.b64decode(v["key"])) for v in setup_data["viewers"]}
    arrivals: list[float] = []
    acks: list[float] = []
    errors = 0

    async def connect(token: str) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(base, auth={"token": token}, namespaces=["/support"], transports=["websocket"],
                          wait_timeout=30)
        return sio

    agents = [await connect(t) for t in setup_data["agents"]]

    def on_message(message: dict[str, Any]) -> None:
        box = keys[message["conversation_id"]]
        sent = float(box.decrypt(base64.b64decode(message["ciphertext"]), base64.b64decode(message["nonce"])))
        arrivals.append(time.time() - sent)

    # the first agents took some conversations automatically on connecting; the rest are claimed
    covered: set[str] = set()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for agent, token in zip(agents, setup_data["agents"], strict=True):
            agent.on("support.message", on_message, namespace="/support")
            listed = (await http.get("/api/v1/support/conversations",
                                     headers={"Authorization": f"Bearer {token}"})).json()["items"]
            for conversation in listed:
                if conversation["queued"] or conversation["id"] in covered:
                    continue
                await agent.call("support.join", {"conversation_id": conversation["id"]}, namespace="/support")
                covered.add(conversation["id"])
    waiting = [v["conversation_id"] for v in setup_data["viewers"] if v["conversation_id"] not in covered]
    for i, conversation_id in enumerate(waiting):
        agent = agents[i % len(agents)]
        for event in ("support.claim", "support.join"):
            reply = await agent.call(event, {"conversation_id": conversation_id}, namespace="/support", timeout=30)
            if not reply.get("ok"):
                sys.exit(f"{event} failed: {reply}")
    viewers = [await connect(v["token"]) for v in setup_data["viewers"]]
    until = time.monotonic() + duration

    async def talk(sio: socketio.AsyncClient, conversation_id: str) -> None:
        nonlocal errors
        box = keys[conversation_id]
        while time.monotonic() < until:
            t0 = time.time()
            nonce = random(SecretBox.NONCE_SIZE)
            sealed = box.encrypt(f"{t0:.6f}".encode() + b" " * 150, nonce).ciphertext
            reply = await sio.call("support.send", {"conversation_id": conversation_id,
                                                    "client_id": secrets.token_hex(8), "nonce": b64(nonce),
                                                    "ciphertext": b64(sealed)}, namespace="/support", timeout=30)
            if reply.get("ok"):
                acks.append(time.time() - t0)
            else:
                errors += 1
                await asyncio.sleep(float(reply.get("error", {}).get("details", {}).get("retry_after", 0.2) or 0.2))

    started = time.monotonic()
    await asyncio.gather(*(talk(s, v["conversation_id"]) for s, v in zip(viewers, setup_data["viewers"], strict=True)))
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)  # the last relays
    for sio in [*agents, *viewers]:
        await sio.disconnect()
    return {"messages": len(acks), "seconds": elapsed, "errors": errors, "acks": sorted(acks),
            "arrivals": sorted(arrivals)}


def generator_main(args: argparse.Namespace) -> None:
    raise_nofile()
    data = json.loads(Path(args.setup_file).read_text())
    if args.generate == "raw":
        result = asyncio.run(raw_inserts(data["mongo_url"], data["db"], len(data["viewers"]), args.duration))
    else:
        result = asyncio.run(chat_load(data["base"], data, args.duration))
    Path(args.out).write_text(json.dumps(result))


# --- the run --------------------------------------------------------------------------------


def run_generator(tmp: Path, mode: str, setup_file: Path, duration: float) -> dict[str, Any]:
    out = tmp / f"{mode}.json"
    proc, log = start_script(__file__, ["--generate", mode, "--setup-file", str(setup_file), "--duration",
                                        str(duration), "--out", str(out)], tmp, f"gen-{mode}",
                             env={**app_env(0, tmp), "PYTHONPATH": str(ROOT)})
    if proc.wait(timeout=duration + 600) != 0:
        sys.exit(f"the {mode} generator failed:\n{log.read_text(errors='replace')[-3000:]}")
    return json.loads(out.read_text())


def main(args: argparse.Namespace) -> None:
    from storage.embedded_mongo import EmbeddedMongo

    with scratch_dir() as tmp:
        port = free_port()
        data_dir = tmp / "app"
        # the bench signs every viewer up from one address, and each sends as fast as it is answered
        env = app_env(port, data_dir, NAMELESS_RATE_LIMIT_AUTH="100000", NAMELESS_RATE_LIMIT_IP="10000000",
                      NAMELESS_RATE_LIMIT_USER="10000000", NAMELESS_SUPPORT_MESSAGES_PER_MINUTE="10000000")
        app, app_log = start_script(str(ROOT / "run.py"), [], tmp, "app", env)
        try:
            wait_until_answers(app, port, "/readyz", "app", app_log, timeout=120)
            base = f"http://127.0.0.1:{port}"
            print(f"setup: {args.conversations} viewers with a conversation each, {args.agents} agents",
                  file=sys.stderr)
            data = asyncio.run(setup(base, env, tmp, args.conversations, args.agents))
            owner = next(data_dir.glob("**/owner.json"))
            data.update(base=base, mongo_url=EmbeddedMongo(owner.parent).start(), db="nameless")
            setup_file = tmp / "setup.json"
            setup_file.write_text(json.dumps(data))
            db_pid = json.loads(owner.read_text()).get("child_pid")

            load = load_average()
            meter = CpuMeter(app.pid, db_pid)
            raw = run_generator(tmp, "raw", setup_file, args.duration)
            (raw_app, raw_db), _ = meter.shares(raw["seconds"])
            meter = CpuMeter(app.pid, db_pid)
            chat = run_generator(tmp, "chat", setup_file, args.duration)
            (chat_app, chat_db), _ = meter.shares(chat["seconds"])
        finally:
            stop(app, name="app", log=app_log)
    raw_rate = raw["messages"] / raw["seconds"]
    chat_rate = chat["messages"] / chat["seconds"]
    print(f"{args.conversations} conversations, {args.duration:.0f} s each, load average before: {load}")
    print(f"{'':8}{'msg/s':>9}{'ack p50':>10}{'ack p99':>10}{'recv p50':>10}{'recv p99':>10}{'errors':>8}"
          f"{'app CPU':>9}{'db CPU':>8}")
    print(f"{'raw':8}{raw_rate:>9.0f}{'':>10}{'':>10}{'':>10}{'':>10}{0:>8}{raw_app:>9.0%}{raw_db:>8.0%}")
    acks, arrivals = chat["acks"], chat["arrivals"]
    print(f"{'chat':8}{chat_rate:>9.0f}{percentile(acks, 50) * 1000:>10.1f}{percentile(acks, 99) * 1000:>10.1f}"
          f"{percentile(arrivals, 50) * 1000:>10.1f}{percentile(arrivals, 99) * 1000:>10.1f}{chat['errors']:>8}"
          f"{chat_app:>9.0%}{chat_db:>8.0%}")
    print(ratio_line("chat/raw", {"msg/s": chat_rate / raw_rate}))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conversations", type=int, default=200)
    p.add_argument("--agents", type=int, default=4)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--generate", choices=["raw", "chat"], help=argparse.SUPPRESS)
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
