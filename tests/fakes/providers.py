"""Stand-ins for Google, Apple and Facebook at their HTTP boundary: JWKS documents with
locally generated RSA keys, and the Graph API's debug_token and /me shapes. The server's
real verification code runs against them."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
import tornado.httpserver
import tornado.netutil
import tornado.web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

GOOGLE_CLIENT = "nameless-android.apps.googleusercontent.com"
APPLE_CLIENT = "com.nameless.ios"
FB_APP_ID = "1234567890"
FB_APP_SECRET = "fb-app-secret-for-tests"
FIREBASE_PROJECT = "nameless-test"


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Providers:
    url: str = ""
    google_key: Any = field(default_factory=_rsa)
    apple_key: Any = field(default_factory=_rsa)
    rogue_key: Any = field(default_factory=_rsa)
    firebase_key: Any = field(default_factory=_rsa)
    facebook_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    graph_requests: list[dict[str, str]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {
            "GOOGLE_CLIENT_IDS": GOOGLE_CLIENT,
            "NAMELESS_GOOGLE_JWKS_URL": self.url + "/google/certs",
            "APPLE_CLIENT_IDS": APPLE_CLIENT,
            "NAMELESS_APPLE_JWKS_URL": self.url + "/apple/keys",
            "FACEBOOK_APP_ID": FB_APP_ID,
            "FACEBOOK_APP_SECRET": FB_APP_SECRET,
            "NAMELESS_FACEBOOK_GRAPH_URL": self.url + "/graph",
            "FIREBASE_PROJECT_ID": FIREBASE_PROJECT,
            "NAMELESS_FIREBASE_CERTS_URL": self.url + "/firebase/certs",
        }

    def firebase_token(self, uid: str, phone: str | None, *, key: Any = None, provider: str = "phone",
                       **overrides: Any) -> str:
        now = dt.datetime.now(dt.UTC)
        claims: dict[str, Any] = {
            "iss": f"https://securetoken.google.com/{FIREBASE_PROJECT}", "aud": FIREBASE_PROJECT, "sub": uid,
            "iat": now, "exp": now + dt.timedelta(hours=1), "auth_time": int(now.timestamp()) - 5,
            "firebase": {"sign_in_provider": provider, "identities": {"phone": [phone] if phone else []}},
        }
        if phone:
            claims["phone_number"] = phone
        claims.update(overrides)
        return jwt.encode(claims, key or self.firebase_key, algorithm="RS256", headers={"kid": "fb-cert-1"})

    def id_token(self, provider: str, sub: str, email: str | None, *, key: Any = None, kid: str | None = None,
                 **overrides: Any) -> str:
        now = dt.datetime.now(dt.UTC)
        claims: dict[str, Any] = {
            "iss": "https://accounts.google.com" if provider == "google" else "https://appleid.apple.com",
            "aud": GOOGLE_CLIENT if provider == "google" else APPLE_CLIENT,
            "sub": sub,
            "iat": now,
            "exp": now + dt.timedelta(minutes=10),
        }
        if email:
            claims["email"] = email
            claims["email_verified"] = True if provider == "google" else "true"
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        signing = key or (self.google_key if provider == "google" else self.apple_key)
        return jwt.encode(claims, signing, algorithm="RS256", headers={"kid": kid or f"{provider}-1"})

    def facebook_token(self, user_id: str, email: str | None, *, app_id: str = FB_APP_ID, valid: bool = True) -> str:
        token = "EAA" + uuid.uuid4().hex
        self.facebook_tokens[token] = {"user_id": user_id, "email": email, "app_id": app_id, "valid": valid}
        return token


def _jwks(key: Any, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": [jwk]}


class _Jwks(tornado.web.RequestHandler):
    def initialize(self, providers: Providers, which: str) -> None:
        self.p = providers
        self.which = which

    def get(self) -> None:
        key = self.p.google_key if self.which == "google" else self.p.apple_key
        self.write(_jwks(key, f"{self.which}-1"))


def _self_signed_pem(key: Any) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=7)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class _FirebaseCerts(tornado.web.RequestHandler):
    def initialize(self, providers: Providers) -> None:
        self.p = providers

    def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=19000")
        self.write({"fb-cert-1": _self_signed_pem(self.p.firebase_key)})


class _Graph(tornado.web.RequestHandler):
    def initialize(self, providers: Providers) -> None:
        self.p = providers

    def get(self, path: str) -> None:
        args = {k: self.get_argument(k) for k in self.request.arguments}
        self.p.graph_requests.append({"path": path, **args})
        if path == "debug_token":
            if args.get("access_token") != f"{FB_APP_ID}|{FB_APP_SECRET}":
                self.set_status(400)
                self.write({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}})
                return
            info = self.p.facebook_tokens.get(args.get("input_token", ""))
            if info is None:
                self.write({"data": {"is_valid": False, "error": {"code": 190, "message": "Malformed access token"}}})
                return
            expires = int((dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).timestamp())
            self.write({"data": {"app_id": info["app_id"], "type": "USER", "application": "Nameless",
                                 "is_valid": info["valid"], "expires_at": expires, "user_id": info["user_id"],
                                 "scopes": ["email", "public_profile"]}})
        elif path == "me":
            token = args.get("access_token", "")
            info = self.p.facebook_tokens.get(token)
            proof = hmac.new(FB_APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()
            if info is None or args.get("appsecret_proof") != proof:
                self.set_status(400)
                self.write({"error": {"message": "Invalid appsecret_proof", "type": "GraphMethodException"}})
                return
            body = {"id": info["user_id"], "name": "Face Book"}
            if info["email"]:
                body["email"] = info["email"]
            self.write(body)
        else:
            self.set_status(404)


async def start_providers() -> tuple[Providers, tornado.httpserver.HTTPServer]:
    providers = Providers()
    app = tornado.web.Application([
        (r"/google/certs", _Jwks, {"providers": providers, "which": "google"}),
        (r"/apple/keys", _Jwks, {"providers": providers, "which": "apple"}),
        (r"/graph/(debug_token|me)", _Graph, {"providers": providers}),
        (r"/firebase/certs", _FirebaseCerts, {"providers": providers}),
    ])
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    providers.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    return providers, server
