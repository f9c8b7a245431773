"""Stand-ins for FCM (HTTP v1 `messages:send` and Google's OAuth token endpoint) and the
Mailchimp Marketing API (members, tags, member events), answering in their documented
shapes. They run on their own event loop in a thread, since google-auth fetches the FCM
token with a blocking call. The OAuth endpoint checks the service account's signed JWT
against the public key of a throwaway service account; Mailchimp checks basic auth."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt
import tornado.httpserver
import tornado.netutil
import tornado.web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT = "nameless-push-test"
MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us21"
AUDIENCE = "aud123"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth's fixed `aud`


@dataclass
class Fakes:
    url: str = ""
    key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    pushes: list[dict[str, Any]] = field(default_factory=list)  # accepted messages
    unregistered: set[str] = field(default_factory=set)
    fail_next: list[int] = field(default_factory=list)  # HTTP statuses for the next sends
    stall_next: int = 0  # sends to answer too late (after the client's timeout)
    stall_s: float = 0.0
    tokens_issued: int = 0
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    mc_fail_next: list[int] = field(default_factory=list)
    mc_stall_next: int = 0  # event posts that stall past the timeout
    mc_stall_lands: bool = False  # a stalled event post is recorded (else it is dropped)
    topics: dict[str, set[str]] = field(default_factory=dict)  # topic -> tokens subscribed
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def service_account(self) -> dict[str, str]:
        pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": PROJECT, "private_key_id": "k1", "private_key": pem,
                "client_email": f"push@{PROJECT}.iam.gserviceaccount.com", "client_id": "1",
                "token_uri": f"{self.url}/token"}

    def env(self, credentials_file: str) -> dict[str, str]:
        return {"FIREBASE_CREDENTIALS_FILE": credentials_file, "NAMELESS_FCM_ENDPOINT": self.url,
                "MAILCHIMP_API_KEY": MAILCHIMP_KEY, "MAILCHIMP_AUDIENCE": AUDIENCE,
                "NAMELESS_MAILCHIMP_ENDPOINT": f"{self.url}/3.0"}

    def per_token(self) -> Counter:
        with self.lock:
            return Counter(p["message"]["token"] for p in self.pushes if "token" in p["message"])

    def member(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            return self.members.get(hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest())

    def events_for(self, email: str, name: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            found = list(self.events.get(hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest(), []))
        return [e for e in found if name is None or e["name"] == name]


class _Base(tornado.web.RequestHandler):
    def initialize(self, fakes: Fakes) -> None:
        self.fakes = fakes

    def check_xsrf_cookie(self) -> None:
        return None

    def send(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class TokenHandler(_Base):
    def post(self) -> None:
        assertion = self.get_body_argument("assertion", "")
        public = self.fakes.key.public_key()
        try:
            claims = jwt.decode(assertion, public, algorithms=["RS256"], audience=GOOGLE_TOKEN_AUDIENCE)
        except jwt.PyJWTError as exc:
            self.send(400, {"error": "invalid_grant", "error_description": str(exc)})
            return
        if "firebase.messaging" not in claims.get("scope", "") and "cloud-platform" not in claims.get("scope", ""):
            self.send(400, {"error": "invalid_scope"})
            return
        with self.fakes.lock:
            self.fakes.tokens_issued += 1
        self.send(200, {"access_token": f"ya29.{uuid.uuid4().hex}", "expires_in": 3600, "token_type": "Bearer"})


class SendHandler(_Base):
    async def post(self, project: str) -> None:
        if project != PROJECT or not self.request.headers.get("Authorization", "").startswith("Bearer ya29."):
            self.send(401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad credentials"}})
            return
        body = json.loads(self.request.body)
        message = body.get("message", {})
        token = message.get("token")
        with self.fakes.lock:
            fail = self.fakes.fail_next.pop(0) if self.fakes.fail_next else None
            stall = self.fakes.stall_next > 0
            if stall:
                self.fakes.stall_next -= 1
        if fail is not None:
            status = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}.get(fail, "INTERNAL")
            self.send(fail, {"error": {"code": fail, "status": status, "message": "try later"}})
            return
        if token in self.fakes.unregistered:
            self.send(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.",
                                      "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                                   "errorCode": "UNREGISTERED"}]}})
            return
        name = f"projects/{PROJECT}/messages/{uuid.uuid4().hex}"
        with self.fakes.lock:
            self.fakes.pushes.append({"message": message, "name": name, "wall": time.time()})
        if stall:  # accepted, but the answer comes too late
            await asyncio.sleep(self.fakes.stall_s)
        self.send(200, {"name": name})


class TopicHandler(_Base):
    """FCM v1 topic management: POST .../registrations/{token}/topicSubscriptions?topic_name=,
    DELETE .../topicSubscriptions/{topic}."""

    def _ok(self, project: str) -> bool:
        if project != PROJECT or not self.request.headers.get("Authorization", "").startswith("Bearer ya29."):
            self.send(401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad credentials"}})
            return False
        return True

    def post(self, project: str, token: str, _: str) -> None:
        if self._ok(project):
            with self.fakes.lock:
                self.fakes.topics.setdefault(self.get_query_argument("topic_name"), set()).add(token)
            self.send(200, {})

    def delete(self, project: str, token: str, topic: str) -> None:
        if self._ok(project):
            with self.fakes.lock:
                self.fakes.topics.get(topic.lstrip("/"), set()).discard(token)
            self.send(200, {})


class StatsHandler(_Base):
    """For benchmarks in another process: pushes accepted so far and when the last one was."""

    def get(self) -> None:
        with self.fakes.lock:
            last = self.fakes.pushes[-1]["wall"] if self.fakes.pushes else None
            self.send(200, {"pushes": len(self.fakes.pushes), "last_wall": last})


class MailchimpHandler(_Base):
    def _auth(self) -> bool:
        header = self.request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        _, _, key = base64.b64decode(header[6:]).decode().partition(":")
        return key == MAILCHIMP_KEY

    async def _handle(self, path: str) -> None:
        if not self._auth():
            self.send(401, {"title": "API Key Invalid", "status": 401, "detail": "bad key"})
            return
        parts = path.strip("/").split("/")
        with self.fakes.lock:
            fail = self.fakes.mc_fail_next.pop(0) if self.fakes.mc_fail_next else None
        if fail is not None:
            self.send(fail, {"title": "Service Unavailable", "status": fail, "detail": "try later"})
            return
        if parts[:1] == ["campaigns"]:
            self._campaign(parts, json.loads(self.request.body) if self.request.body else {})
            return
        if parts == ["lists", AUDIENCE, "tag-search"]:
            name = self.get_query_argument("name", "")
            self.send(200, {"tags": [{"id": 7, "name": name}], "total_items": 1})
            return
        if parts[:1] != ["lists"] or len(parts) < 2 or parts[1] != AUDIENCE:
            self.send(404, {"title": "Resource Not Found", "status": 404, "detail": "no such list"})
            return
        method = self.request.method
        body = json.loads(self.request.body) if self.request.body else {}
        if len(parts) == 4 and parts[2] == "members" and method == "GET":
            with self.fakes.lock:
                member = self.fakes.members.get(parts[3])
            if member is None:
                self.send(404, {"title": "Resource Not Found", "status": 404, "detail": "no such member"})
            else:
                self.send(200, {"id": parts[3], **member})
        elif len(parts) == 4 and parts[2] == "members" and method == "PUT":
            with self.fakes.lock:
                member = self.fakes.members.setdefault(parts[3], {"email_address": body["email_address"],
                                                                  "status": body.get("status_if_new"), "tags": {}})
                if body.get("status"):
                    member["status"] = body["status"]
            self.send(200, {"id": parts[3], **member})
        elif len(parts) == 5 and parts[2] == "members" and parts[4] == "tags" and method == "POST":
            with self.fakes.lock:
                member = self.fakes.members[parts[3]]
                for tag in body["tags"]:
                    member["tags"][tag["name"]] = tag["status"] == "active"
            self.set_status(204)
            self.finish()
        elif len(parts) == 5 and parts[2] == "members" and parts[4] == "events" and method == "POST":
            with self.fakes.lock:
                stall = self.fakes.mc_stall_next > 0
                if stall:
                    self.fakes.mc_stall_next -= 1
                known = parts[3] in self.fakes.members
            if stall:
                if self.fakes.mc_stall_lands and known:
                    with self.fakes.lock:
                        self.fakes.events.setdefault(parts[3], []).append(body)
                await asyncio.sleep(self.fakes.stall_s)
                self.send(504, {"title": "Gateway Timeout", "status": 504, "detail": "too late"})
                return
            if not known:
                self.send(404, {"title": "Resource Not Found", "status": 404, "detail": "no such member"})
                return
            with self.fakes.lock:
                self.fakes.events.setdefault(parts[3], []).append(body)
            self.set_status(204)
            self.finish()
        elif len(parts) == 5 and parts[2] == "members" and parts[4] == "events" and method == "GET":
            with self.fakes.lock:
                events = list(self.fakes.events.get(parts[3], []))
            self.send(200, {"events": events, "total_items": len(events)})
        else:
            self.send(404, {"title": "Resource Not Found", "status": 404, "detail": path})

    def _campaign(self, parts: list[str], body: dict[str, Any]) -> None:
        with self.fakes.lock:
            if len(parts) == 1 and self.request.method == "POST":
                campaign = {"id": f"c{len(self.fakes.campaigns) + 1}", **body, "status": "save"}
                self.fakes.campaigns.append(campaign)
                self.send(200, campaign)
                return
            campaign = next((c for c in self.fakes.campaigns if c["id"] == parts[1]), None)
            if campaign is None:
                self.send(404, {"title": "Resource Not Found", "status": 404, "detail": "no such campaign"})
            elif parts[2:] == ["content"]:
                campaign["content"] = body
                self.send(200, {"plain_text": body.get("plain_text")})
            elif parts[2:] == ["actions", "send"]:
                campaign["status"] = "sent"
                self.set_status(204)
                self.finish()
            else:
                self.send(404, {"title": "Resource Not Found", "status": 404, "detail": "/".join(parts)})

    async def get(self, path: str) -> None:
        await self._handle(path)

    async def put(self, path: str) -> None:
        await self._handle(path)

    async def post(self, path: str) -> None:
        await self._handle(path)


def start_fakes() -> tuple[Fakes, callable]:
    """Serve the fakes on a loopback port in a thread of their own; returns (fakes, stop)."""
    fakes = Fakes()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        deps = {"fakes": fakes}
        app = tornado.web.Application([
            (r"/token", TokenHandler, deps),
            (r"/v1/projects/([^/]+)/messages:send", SendHandler, deps),
            (r"/3\.0/(.*)", MailchimpHandler, deps),
            (r"/stats", StatsHandler, deps),
            (r"/v1/projects/([^/]+)/registrations/([^/]+)/topicSubscriptions(/?.*)", TopicHandler, deps),
        ])
        server = tornado.httpserver.HTTPServer(app)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server.add_sockets(sockets)
        fakes.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        holder.update(loop=loop, server=server)
        ready.set()
        loop.run_forever()
        server.stop()
        loop.close()

    thread = threading.Thread(target=run, name="messaging-fakes", daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        holder["loop"].call_soon_threadsafe(holder["loop"].stop)
        thread.join(5)

    return fakes, stop
