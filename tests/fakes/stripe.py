"""Stripe at its HTTP boundary, for the billing tests and bench.

`localstripe` (PyPI; a stateful fake Stripe nobody here wrote) runs as its own process on
a loopback port and answers customers, products, plans, coupons, payment methods,
subscriptions and invoices, and sends its own signed webhooks. It has no Prices API,
promotion codes, Checkout Sessions or customer portal, and its invoices carry no hosted
page or PDF links: `StripeStandIn` is a small server in front of it that answers those in
Stripe's documented JSON shapes and forwards every other call to localstripe. The app's
real stripe library talks to the stand-in's address. `calls` says which call went where.

A price is created in localstripe as a plan with the same terms (in Stripe a plan is a
price, under the same id), so subscriptions to it live in localstripe.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import tornado.httpserver
import tornado.netutil
import tornado.web

from tests.helpers import free_port

SECRET_KEY = "sk_test_nameless"
WEBHOOK_SECRET = "whsec_test_" + "n" * 32
GOOD_CARD = "4242424242424242"
NEEDS_AUTHENTICATION = "4000002760003184"  # every charge asks the cardholder for 3-D Secure

# localstripe's own entry point listens on every interface and pickles its store to one
# fixed path in /tmp on every write; this runs its app on loopback with neither.
_LAUNCH = """
import sys
from aiohttp import web
from localstripe import resources
from localstripe.server import app
resources.Store.dump_to_disk = lambda self: None
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe's signature header: HMAC-SHA256 of `t.payload` under the endpoint secret."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or f"evt_{secrets.token_hex(12)}", "object": "event", "type": event_type,
            "created": int(time.time()), "livemode": False, "api_version": "2026-10-28.endive",
            "data": {"object": obj}}


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`line_items[0][price]=x`) as nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = [key.split("[", 1)[0], *[p.rstrip("]") for p in key.split("[")[1:]]]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(value: Any) -> Any:
        if isinstance(value, dict):
            if value and all(k.isdigit() for k in value):
                return [lists(value[k]) for k in sorted(value, key=int)]
            return {k: lists(v) for k, v in value.items()}
        return value

    return lists(root)


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            out += flatten(value, name)
        elif isinstance(value, list):
            out += flatten({str(i): v for i, v in enumerate(value)}, name)
        elif value is not None:
            out.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
    return out


class LocalStripe:
    """The localstripe process on a loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _LAUNCH, str(self.port), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(auth=(SECRET_KEY, "")) as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(self.url + "/v1/customers")).status_code == 200:
                        return
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    await self.stop()
                    raise RuntimeError(f"localstripe did not start (exit {self.proc.returncode}); "
                                       f"run `{sys.executable} -m localstripe` to see why")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@dataclass
class StripeStandIn:
    localstripe: LocalStripe
    url: str = ""
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, "localstripe"|"stand-in")
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    promotion_codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    session_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=20))
    held: dict[str, asyncio.Event] = field(default_factory=dict)  # path -> released when set
    waiting: list[str] = field(default_factory=list)  # held calls that arrived
    failing: set[str] = field(default_factory=set)  # paths answered with Stripe's 500
    trials: dict[str, int] = field(default_factory=dict)  # subscription id -> trial days

    def hold(self, path: str) -> asyncio.Event:
        """Stripe is slow on `path`: calls to it wait until the returned event is set (so a
        test can act while the app is mid-apply)."""
        gate = self.held[path] = asyncio.Event()
        return gate

    def env(self) -> dict[str, str]:
        """The app's settings for this Stripe."""
        return {"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "NAMELESS_STRIPE_API_BASE": self.url,
                "NAMELESS_BILLING_SUCCESS_URL": "https://app.example.com/billing/done",
                "NAMELESS_BILLING_CANCEL_URL": "https://app.example.com/billing/canceled",
                "NAMELESS_BILLING_PORTAL_RETURN_URL": "https://app.example.com/account"}

    async def ls(self, method: str, path: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """A call straight to localstripe (what Stripe does on its own: charge, renew, end)."""
        resp = await self.http.request(method, self.localstripe.url + path, auth=(SECRET_KEY, ""),
                                       data=dict(flatten(data)) if data and method != "GET" else None,
                                       params=dict(flatten(data)) if data and method == "GET" else None)
        if resp.status_code >= 400:
            raise AssertionError(f"localstripe {method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json()

    # --- what the tests do in Stripe's place ---------------------------------------------

    async def complete_checkout(self, session_id: str, card: str = GOOD_CARD) -> dict[str, Any]:
        """The customer pays on the Checkout page: card saved, subscription started."""
        session = self.sessions[session_id]
        customer = session["customer"]
        await self.use_card(customer, card)
        params = self.session_params[session_id]
        data = params.get("subscription_data") or {}
        trial = int(data.get("trial_period_days") or 0)
        sub = await self.ls("POST", "/v1/subscriptions", {
            "customer": customer, "items": [{"plan": params["line_items"][0]["price"]}],
            "metadata": data.get("metadata") or {}, "trial_period_days": trial or None,
        })
        if trial:
            self.trials[sub["id"]] = trial
        session.update(status="complete", payment_status="paid", subscription=sub["id"])
        return session

    async def use_card(self, customer: str, card: str) -> None:
        pm = await self.ls("POST", "/v1/payment_methods", {
            "type": "card", "card": {"number": card, "exp_month": "12", "exp_year": "2034", "cvc": "123"}})
        await self.ls("POST", f"/v1/payment_methods/{pm['id']}/attach", {"customer": customer})
        await self.ls("POST", f"/v1/customers/{customer}",
                      {"invoice_settings": {"default_payment_method": pm["id"]}})

    async def charge_renewal(self, subscription_id: str) -> dict[str, Any]:
        """A new period's invoice, charged to the default card (paid, or open after a decline)."""
        sub = await self.ls("GET", f"/v1/subscriptions/{subscription_id}")
        invoice = await self.ls("POST", "/v1/invoices", {"customer": sub["customer"], "subscription": sub["id"]})
        resp = await self.http.post(f"{self.localstripe.url}/v1/invoices/{invoice['id']}/pay",
                                    auth=(SECRET_KEY, ""))
        assert resp.status_code in (200, 402), resp.text
        return await self.ls("GET", f"/v1/invoices/{invoice['id']}")

    async def fail_renewal(self, subscription_id: str) -> dict[str, Any]:
        """A renewal the cardholder does not authenticate: in localstripe the one way a
        recurring payment fails and moves the subscription to past_due (a plain decline on
        a manual invoice payment leaves the subscription untouched there)."""
        sub = await self.ls("GET", f"/v1/subscriptions/{subscription_id}")
        await self.use_card(sub["customer"], NEEDS_AUTHENTICATION)
        invoice = await self.charge_renewal(subscription_id)
        intent = await self.ls("GET", f"/v1/payment_intents/{invoice['payment_intent']}")
        assert intent["status"] == "requires_action", intent
        await self.ls("POST", f"/v1/payment_intents/{intent['id']}/_authenticate",
                      {"client_secret": intent["client_secret"], "success": False})
        return await self.ls("GET", f"/v1/invoices/{invoice['id']}")

    async def retry_invoice(self, invoice_id: str) -> dict[str, Any]:
        return await self.ls("POST", f"/v1/invoices/{invoice_id}/pay")

    async def register_webhook(self, url: str) -> None:
        """localstripe signs and sends its own events to `url` with the endpoint secret."""
        resp = await self.http.post(f"{self.localstripe.url}/_config/webhooks/nameless",
                                    data={"url": url, "secret": WEBHOOK_SECRET})
        assert resp.status_code == 200, resp.text

    # --- the stand-in's own answers -------------------------------------------------------

    async def handle(self, handler: tornado.web.RequestHandler) -> None:
        req = handler.request
        path = req.path
        body = unflatten(urllib.parse.parse_qsl(req.body.decode(), keep_blank_values=True)) if req.body else {}
        query = unflatten(urllib.parse.parse_qsl(req.query, keep_blank_values=True))
        if req.headers.get("Authorization", "") != f"Bearer {SECRET_KEY}":
            return self._reply(handler, 401, {"error": {"type": "invalid_request_error",
                                                        "message": "Invalid API Key provided"}})
        if path in self.held:
            self.waiting.append(path)
            await self.held[path].wait()
        if path in self.failing:
            self.calls.append((req.method, path, "stand-in"))
            return self._reply(handler, 500, {"error": {"type": "api_error", "message": "Stripe is having a moment"}})
        own = await self._own(req.method, path, body, query)
        if own is not None:
            self.calls.append((req.method, path, "stand-in"))
            return self._reply(handler, *own)
        self.calls.append((req.method, path, "localstripe"))
        resp = await self.http.request(req.method, self.localstripe.url + path + (f"?{req.query}" if req.query else ""),
                                       content=req.body if req.method != "GET" else None,
                                       headers={k: v for k, v in req.headers.items()
                                                if k.lower() in ("authorization", "content-type")})
        data = resp.json() if resp.content else {}
        if resp.status_code < 300 and isinstance(data, dict) and data.get("object") == "invoice":
            data = self._invoice_links(data)
        if resp.status_code < 300 and isinstance(data, dict) and data.get("object") == "subscription":
            data = self._trialing(data)
        return self._reply(handler, resp.status_code, data)

    def _invoice_links(self, invoice: dict[str, Any]) -> dict[str, Any]:
        base = f"{self.url}/invoices/{invoice['id']}"
        return {**invoice, "hosted_invoice_url": invoice.get("hosted_invoice_url") or base,
                "invoice_pdf": invoice.get("invoice_pdf") or base + "/pdf",
                "number": invoice.get("number") or invoice["id"][-8:].upper()}

    def _trialing(self, sub: dict[str, Any]) -> dict[str, Any]:
        """localstripe leaves a subscription with a trial `incomplete` (it bills nothing until
        the trial ends and never moves on); Stripe says `trialing`, the trial being the
        current period."""
        days = self.trials.get(sub["id"])
        if not days or sub.get("status") != "incomplete":
            return sub
        start = int(sub.get("start_date") or sub.get("created") or time.time())
        end = start + days * 86_400
        items = sub.get("items") or {}
        for item in items.get("data") or []:
            item.update(current_period_start=start, current_period_end=end)
        return {**sub, "status": "trialing", "trial_start": start, "trial_end": end,
                "current_period_start": start, "current_period_end": end, "items": items}

    @staticmethod
    def _reply(handler: tornado.web.RequestHandler, status: int, data: dict[str, Any]) -> None:
        handler.set_status(status)
        handler.set_header("Content-Type", "application/json")
        handler.set_header("Request-Id", f"req_{secrets.token_hex(6)}")
        handler.finish(json.dumps(data))

    @staticmethod
    def _error(status: int, message: str, param: str | None = None) -> tuple[int, dict[str, Any]]:
        return status, {"error": {"type": "invalid_request_error", "message": message, "param": param,
                                  "code": "resource_missing" if status == 404 else "parameter_invalid"}}

    async def _exists(self, path: str) -> bool:
        resp = await self.http.get(self.localstripe.url + path, auth=(SECRET_KEY, ""))
        return resp.status_code == 200

    async def _own(self, method: str, path: str, body: dict[str, Any], query: dict[str, Any]
                   ) -> tuple[int, dict[str, Any]] | None:
        if method == "POST" and path == "/v1/prices":
            plan = await self.ls("POST", "/v1/plans", {
                "product": body["product"], "amount": body["unit_amount"], "currency": body["currency"],
                "interval": body["recurring"]["interval"], "metadata": body.get("metadata") or {}})
            price = {"id": plan["id"], "object": "price", "active": True, "currency": body["currency"],
                     "unit_amount": int(body["unit_amount"]), "product": body["product"], "type": "recurring",
                     "recurring": {"interval": body["recurring"]["interval"], "interval_count": 1},
                     "metadata": body.get("metadata") or {}, "livemode": False, "created": int(time.time())}
            self.prices[price["id"]] = price
            return 200, price
        if method == "POST" and path == "/v1/promotion_codes":
            coupon = (body.get("promotion") or {}).get("coupon")
            if not coupon or not await self._exists(f"/v1/coupons/{coupon}"):
                return self._error(400, "No such coupon", "promotion.coupon")
            promo = {"id": f"promo_{secrets.token_hex(8)}", "object": "promotion_code", "active": True,
                     "code": body["code"], "promotion": {"type": "coupon", "coupon": coupon},
                     "max_redemptions": int(body["max_redemptions"]) if body.get("max_redemptions") else None,
                     "times_redeemed": 0, "livemode": False, "created": int(time.time()), "metadata": {}}
            self.promotion_codes[promo["id"]] = promo
            return 200, promo
        if method == "GET" and path == "/v1/promotion_codes":
            found = [p for p in self.promotion_codes.values()
                     if ("code" not in query or p["code"].lower() == query["code"].lower())
                     and ("active" not in query or str(p["active"]).lower() == query["active"])]
            return 200, {"object": "list", "data": found[: int(query.get("limit", 10))], "has_more": False,
                         "url": "/v1/promotion_codes"}
        if method == "POST" and path == "/v1/checkout/sessions":
            return await self._checkout(body)
        if method == "GET" and path.startswith("/v1/checkout/sessions/"):
            session = self.sessions.get(path.rsplit("/", 1)[1])
            return (200, session) if session else self._error(404, "No such checkout session")
        if method == "POST" and path == "/v1/billing_portal/sessions":
            if not await self._exists(f"/v1/customers/{body.get('customer')}"):
                return self._error(404, "No such customer", "customer")
            sid = f"bps_{secrets.token_hex(10)}"
            return 200, {"id": sid, "object": "billing_portal.session", "customer": body["customer"],
                         "return_url": body.get("return_url"), "url": f"{self.url}/p/session/{sid}",
                         "livemode": False, "created": int(time.time())}
        return None

    async def _checkout(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("mode") != "subscription":
            return self._error(400, "Only subscription mode here", "mode")
        for name in ("success_url", "cancel_url", "customer"):
            if not body.get(name):
                return self._error(400, f"Missing required param: {name}.", name)
        if body.get("discounts") and body.get("allow_promotion_codes"):
            return self._error(400, "You may only specify one of these parameters: allow_promotion_codes, "
                                    "discounts.", "discounts")
        if not await self._exists(f"/v1/customers/{body['customer']}"):
            return self._error(404, "No such customer", "customer")
        items = body.get("line_items") or []
        if len(items) != 1 or not await self._exists(f"/v1/plans/{items[0].get('price')}"):
            return self._error(404, "No such price", "line_items[0][price]")
        for discount in body.get("discounts") or []:
            if discount.get("promotion_code") not in self.promotion_codes:
                return self._error(404, "No such promotion code", "discounts[0][promotion_code]")
        sid = f"cs_test_{secrets.token_hex(16)}"
        session = {"id": sid, "object": "checkout.session", "mode": "subscription", "status": "open",
                   "payment_status": "unpaid", "customer": body["customer"],
                   "client_reference_id": body.get("client_reference_id"), "subscription": None,
                   "success_url": body["success_url"], "cancel_url": body["cancel_url"],
                   "payment_method_types": body.get("payment_method_types") or ["card"],
                   "metadata": body.get("metadata") or {}, "url": f"{self.url}/c/pay/{sid}",
                   "livemode": False, "created": int(time.time())}
        self.sessions[sid] = session
        self.session_params[sid] = body
        return 200, session


class _Route(tornado.web.RequestHandler):
    def initialize(self, standin: StripeStandIn) -> None:
        self.standin = standin

    def check_xsrf_cookie(self) -> None:
        return None

    async def get(self, *_: Any) -> None:
        await self.standin.handle(self)

    post = delete = get


@contextlib.asynccontextmanager
async def running_stripe() -> AsyncIterator[StripeStandIn]:
    ls = LocalStripe()
    await ls.start()
    standin = StripeStandIn(ls)
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/(.*)", _Route, {"standin": standin})]))
    server.add_sockets(sockets)
    standin.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    try:
        yield standin
    finally:
        server.stop()
        await standin.http.aclose()
        await ls.stop()
