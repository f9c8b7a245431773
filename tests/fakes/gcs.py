"""A stand-in for Google Cloud Storage at its HTTP boundary: the OAuth token endpoint of
the service-account flow, the JSON API calls the client library makes (multipart upload,
download, metadata, list, delete) and V4 signed-URL downloads, whose signatures are
checked with the service account's public key exactly as Google documents them."""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import hashlib
import json
import secrets
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import jwt
import tornado.httpserver
import tornado.netutil
import tornado.web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

BUCKET = "nameless-media-test"
CLIENT_EMAIL = "media@nameless-test.iam.gserviceaccount.com"


@dataclass
class FakeGcs:
    url: str = ""
    key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    objects: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    signed_fetches: int = 0

    def credentials_info(self) -> dict[str, Any]:
        pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        return {
            "type": "service_account", "project_id": "nameless-test", "private_key_id": "k1",
            "private_key": pem, "client_email": CLIENT_EMAIL, "client_id": "1",
            "token_uri": self.url + "/token",
        }

    def authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer":
            return False
        if token in self.tokens:
            return True
        try:  # a self-signed JWT, which google-auth may send instead of a token
            jwt.decode(token, self.key.public_key(), algorithms=["RS256"], options={"verify_aud": False})
            return True
        except jwt.PyJWTError:
            return False


def _quote(text: str, safe: str = "") -> str:
    return urllib.parse.quote(text, safe=safe + "~")


def verify_v4(fake: FakeGcs, method: str, raw_path: str, query: dict[str, str], host: str) -> str | None:
    """Google's V4 signing algorithm, checked from the request; returns why it fails, or None."""
    if query.get("X-Goog-Algorithm") != "GOOG4-RSA-SHA256":
        return "algorithm"
    signature = query.get("X-Goog-Signature", "")
    credential = query.get("X-Goog-Credential", "")
    if not credential.startswith(CLIENT_EMAIL + "/"):
        return "credential"
    scope = credential.split("/", 1)[1]
    stamp = query.get("X-Goog-Date", "")
    try:
        signed_at = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        expires = int(query.get("X-Goog-Expires", "0"))
    except ValueError:
        return "date"
    if dt.datetime.now(dt.UTC) > signed_at + dt.timedelta(seconds=expires):
        return "expired"
    if query.get("X-Goog-SignedHeaders") != "host":
        return "signed headers"
    canonical_query = "&".join(
        f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()) if k != "X-Goog-Signature"
    )
    canonical_request = "\n".join([method, raw_path, canonical_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["GOOG4-RSA-SHA256", stamp, scope,
                         hashlib.sha256(canonical_request.encode()).hexdigest()])
    try:
        fake.key.public_key().verify(bytes.fromhex(signature), to_sign.encode(), padding.PKCS1v15(),
                                     hashes.SHA256())
    except (InvalidSignature, ValueError):
        return "signature"
    return None


class _Base(tornado.web.RequestHandler):
    def initialize(self, fake: FakeGcs) -> None:
        self.fake = fake

    def check_auth(self) -> bool:
        if not self.fake.authorized(self.request.headers.get("Authorization", "")):
            self.set_status(401)
            self.write({"error": {"code": 401, "message": "Invalid Credentials"}})
            return False
        return True

    def resource(self, name: str) -> dict[str, Any]:
        data, ctype = self.fake.objects[name]
        return {"kind": "storage#object", "name": name, "bucket": BUCKET, "size": str(len(data)),
                "contentType": ctype, "generation": "1", "md5Hash": "", "id": f"{BUCKET}/{name}/1"}


class _Token(_Base):
    def post(self) -> None:
        assertion = self.get_body_argument("assertion", "")
        try:
            # google-auth always addresses the assertion to Google's token endpoint.
            claims = jwt.decode(assertion, self.fake.key.public_key(), algorithms=["RS256"],
                                audience="https://oauth2.googleapis.com/token")
        except jwt.PyJWTError as exc:
            self.set_status(400)
            self.write({"error": "invalid_grant", "error_description": str(exc)})
            return
        assert claims["iss"] == CLIENT_EMAIL
        token = "ya29." + secrets.token_urlsafe(24)
        self.fake.tokens.add(token)
        self.write({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})


class _Upload(_Base):
    def post(self, bucket: str) -> None:
        if not self.check_auth():
            return
        assert bucket == BUCKET and self.get_query_argument("uploadType") == "multipart"
        ctype = self.request.headers["Content-Type"]
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + self.request.body)
        meta_part, media_part = list(message.iter_parts())
        meta = json.loads(meta_part.get_payload(decode=True))
        self.fake.objects[meta["name"]] = (media_part.get_payload(decode=True),
                                           meta.get("contentType") or media_part.get_content_type())
        self.write(self.resource(meta["name"]))


class _Object(_Base):
    def get(self, bucket: str, name: str) -> None:
        if not self.check_auth():
            return
        name = urllib.parse.unquote(name)
        if name not in self.fake.objects:
            self.set_status(404)
            self.write({"error": {"code": 404, "message": "No such object"}})
            return
        if self.get_query_argument("alt", "") == "media":
            data, ctype = self.fake.objects[name]
            self.set_header("Content-Type", ctype)
            self.write(data)
            return
        self.write(self.resource(name))

    def delete(self, bucket: str, name: str) -> None:
        if not self.check_auth():
            return
        self.fake.objects.pop(urllib.parse.unquote(name), None)
        self.set_status(204)


class _List(_Base):
    def get(self, bucket: str) -> None:
        if not self.check_auth():
            return
        prefix = self.get_query_argument("prefix", "")
        self.write({"kind": "storage#objects",
                    "items": [self.resource(n) for n in sorted(self.fake.objects) if n.startswith(prefix)]})


class _Signed(_Base):
    def get(self, bucket: str, name: str) -> None:
        raw_path = self.request.path
        query = {k: v[-1].decode() for k, v in self.request.query_arguments.items()}
        problem = verify_v4(self.fake, "GET", raw_path, query, self.request.host)
        if problem is not None:
            self.set_status(403)
            self.set_header("Content-Type", "application/xml")
            self.write(f"<Error><Code>SignatureDoesNotMatch</Code><Message>{problem}</Message></Error>")
            return
        key = urllib.parse.unquote(name)
        if bucket != BUCKET or key not in self.fake.objects:
            self.set_status(404)
            return
        self.fake.signed_fetches += 1
        data, ctype = self.fake.objects[key]
        self.set_header("Content-Type", ctype)
        self.set_header("Access-Control-Allow-Origin", "*")
        self.write(data)


async def start_fake_gcs() -> tuple[FakeGcs, tornado.httpserver.HTTPServer]:
    fake = FakeGcs()
    deps = {"fake": fake}
    app = tornado.web.Application([
        (r"/token", _Token, deps),
        (r"/upload/storage/v1/b/([^/]+)/o", _Upload, deps),
        (r"/(?:download/)?storage/v1/b/([^/]+)/o/(.+)", _Object, deps),
        (r"/storage/v1/b/([^/]+)/o", _List, deps),
        (r"/([a-z0-9._-]+)/(.+)", _Signed, deps),
    ])
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    fake.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    return fake, server
