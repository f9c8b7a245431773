"""Paid subscriptions through Stripe: checkout, the customer portal, cancel and resume,
the billing history, and the webhook that keeps the account's one subscription record (the
one entitlement reads) equal to Stripe's latest state.

Events are applied once each (their ids are claimed under a unique index) and in any
order: an event only names what changed, and the object it names is fetched from Stripe
before it is written, stamped with the time that fetch started. A write never replaces a
record stamped later, and the write is optimistic (it names the record it read), so
exactly one writer sees each change and only that one tells playback, the user's sockets
and the outbox.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from server.billing.entitlements import DAY_MS, ENTITLED_STATUSES, EntitlementService, entitles
from server.billing.stripe_api import BadSignature, StripeApi, verify_event
from server.core import errors
from server.core.clock import iso, now, to_ms
from server.core.permissions import Principal
from server.staff.audit import AuditLog
from storage.billing.plans import PlanRepository
from storage.billing.stripe import BillingRepository, Claim
from storage.identity.users import UserRepository

log = logging.getLogger(__name__)

# Stripe's statuses as the record keeps them: the API's five, and `incomplete` (checkout
# not paid yet, shown as none). Unpaid, expired and paused subscriptions give no access.
RECORD_STATUS = {"trialing": "trialing", "active": "active", "past_due": "past_due", "canceled": "canceled",
                 "incomplete": "incomplete", "unpaid": "canceled", "incomplete_expired": "canceled",
                 "paused": "canceled"}
SUBSCRIPTION_EVENTS = ("customer.subscription.created", "customer.subscription.updated",
                       "customer.subscription.deleted", "customer.subscription.paused",
                       "customer.subscription.resumed", "customer.subscription.trial_will_end")
INVOICE_EVENTS = ("invoice.paid", "invoice.payment_failed", "invoice.finalized", "invoice.payment_succeeded")
WATCHED = ("status", "plan_id", "current_period_end_ms", "cancel_at_period_end", "stripe_subscription_id",
           "grace_until_ms")


class LiveEmitter(Protocol):
    async def emit_to_user(self, user_id: str, event: str, data: Any) -> None: ...


Notify = Callable[[str, str, str, str, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Held:
    """The webhook event being applied under this claim."""

    event_id: str
    claim: Claim


@dataclass(frozen=True)
class BillingConfig:
    """The Stripe settings; any of them may be missing (billing then answers 503)."""

    secret_key: str | None
    webhook_secret: str | None
    success_url: str
    cancel_url: str
    portal_return_url: str
    webhook_tolerance: int = 300
    grace_days: int = 7
    event_lease: int = 60


def _id_of(value: Any) -> str | None:
    """An expandable field: an id, or the object with its id."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


def _period(sub: dict[str, Any], key: str) -> int:
    """current_period_start/end in seconds: on the item in current API versions, on the
    subscription in older ones."""
    items = ((sub.get("items") or {}).get("data") or [])
    for item in items:
        if item.get(key):
            return int(item[key])
    return int(sub.get(key) or 0)


def _price_of(sub: dict[str, Any]) -> str | None:
    for item in ((sub.get("items") or {}).get("data") or []):
        return _id_of(item.get("price")) or _id_of(item.get("plan"))
    return None


def _subscription_of_invoice(invoice: dict[str, Any]) -> str | None:
    details = ((invoice.get("parent") or {}).get("subscription_details") or {})
    return _id_of(details.get("subscription")) or _id_of(invoice.get("subscription"))


def invoice_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"], "number": doc.get("number"), "status": doc.get("status"),
        "amount": doc.get("amount_paid") if doc.get("status") == "paid" else doc.get("amount_due"),
        "amount_due": doc.get("amount_due"), "amount_paid": doc.get("amount_paid"), "currency": doc.get("currency"),
        "hosted_invoice_url": doc.get("hosted_invoice_url"), "invoice_pdf": doc.get("invoice_pdf"),
        "created_at": iso(int(doc["created"]) * 1000) if doc.get("created") else None,
    }


class BillingService:
    def __init__(self, config: BillingConfig, api: StripeApi | None, plans: PlanRepository,
                 repo: BillingRepository, users: UserRepository, entitlements: EntitlementService,
                 live: LiveEmitter, notify: Notify, audit: AuditLog) -> None:
        self._config = config
        self._api = api
        self._plans = plans
        self._repo = repo
        self._users = users
        self._entitlements = entitlements
        self._live = live
        self._notify = notify
        self._audit = audit

    # --- configuration -------------------------------------------------------------------

    @staticmethod
    def _missing(name: str) -> errors.ServiceUnavailable:
        return errors.ServiceUnavailable(f"Billing is not configured: {name} is not set.",
                                         code="billing_not_configured")

    def _stripe(self) -> StripeApi:
        if self._api is None or not self._config.secret_key:
            raise self._missing("STRIPE_SECRET_KEY")
        return self._api

    def _url(self, value: str, name: str) -> str:
        if not value:
            raise self._missing(name)
        return value

    # --- checkout, portal, cancel, resume --------------------------------------------------

    async def checkout(self, user_id: str, plan_id: str, promotion_code: str | None) -> dict[str, Any]:
        api = self._stripe()
        success = self._url(self._config.success_url, "NAMELESS_BILLING_SUCCESS_URL")
        cancel = self._url(self._config.cancel_url, "NAMELESS_BILLING_CANCEL_URL")
        plan = await self._plans.get(plan_id)
        if plan is None or not plan.get("active"):
            raise errors.Unprocessable("No such plan.", code="plan_not_found")
        current = await self._plans.subscription(user_id)
        if current is not None and current.get("source") == "stripe" and entitles(current, to_ms(now())):
            raise errors.Conflict("This account already has a subscription; change it in the billing portal.",
                                  code="already_subscribed")
        promotion = None
        if promotion_code is not None:
            promotion = await api.find_promotion_code(promotion_code)
            if promotion is None:
                raise errors.Unprocessable(f"There is no active promotion code {promotion_code!r}.",
                                           code="promotion_code_invalid")
        customer = await self._customer(user_id)
        price = await self.mirror_plan(plan)
        subscription_data: dict[str, Any] = {"metadata": {"user_id": user_id, "plan_id": plan_id}}
        if int(plan.get("trial_days") or 0) > 0:
            subscription_data["trial_period_days"] = int(plan["trial_days"])
        params: dict[str, Any] = {
            "mode": "subscription", "customer": customer, "client_reference_id": user_id,
            "line_items": [{"price": price, "quantity": 1}],
            # Card; Checkout offers Apple Pay and Google Pay with it on devices that have them.
            "payment_method_types": ["card"],
            "success_url": success, "cancel_url": cancel,
            "subscription_data": subscription_data, "metadata": {"user_id": user_id, "plan_id": plan_id},
        }
        if promotion is not None:
            params["discounts"] = [{"promotion_code": promotion["id"]}]
        else:
            params["allow_promotion_codes"] = True
        session = await api.create_checkout_session(params)
        return {"checkout_url": session["url"], "session_id": session["id"]}

    async def portal(self, user_id: str) -> dict[str, Any]:
        api = self._stripe()
        return_url = self._url(self._config.portal_return_url, "NAMELESS_BILLING_PORTAL_RETURN_URL")
        customer = await self._repo.customer_of(user_id)
        if customer is None:
            raise errors.NotFound("This account has no billing account yet; subscribe first.",
                                  code="billing_account_not_found")
        session = await api.create_portal_session(customer, return_url)
        return {"url": session["url"]}

    async def set_cancel_at_period_end(self, user_id: str, cancel: bool) -> dict[str, Any]:
        """Cancel at the end of the paid period, or take that back."""
        api = self._stripe()
        record = await self._plans.subscription(user_id)
        if (record is None or record.get("source") != "stripe" or not record.get("stripe_subscription_id")
                or record.get("status") not in ENTITLED_STATUSES):
            raise errors.NotFound("There is no paid subscription on this account.", code="subscription_not_found")
        started = time.time_ns()
        sub = await api.update_subscription(record["stripe_subscription_id"], {"cancel_at_period_end": cancel})
        await self._apply_subscription(sub, started)
        return await self._entitlements.subscription_view(user_id)

    async def _customer(self, user_id: str) -> str:
        """The account's one Stripe customer, created on first need."""
        known = await self._repo.customer_of(user_id)
        if known is not None:
            return known
        user = await self._users.get(user_id)
        if user is None:
            raise errors.NotFound("No such account.", code="user_not_found")
        created = await self._stripe().create_customer(user_id, user["email"])
        return await self._repo.link_customer(user_id, created["id"], to_ms(now()))

    async def mirror_plan(self, plan: dict[str, Any]) -> str:
        """The Stripe price of the plan's current terms. Prices are versions: new terms make
        a new price, and the older ones stay mapped to the plan for those who pay them."""
        api = self._stripe()
        amount, currency, interval = int(plan["price_cents"]), str(plan["currency"]), str(plan["interval"])
        known = await self._repo.price_for(plan["_id"], amount, currency, interval)
        if known is not None:
            return known
        product = plan.get("stripe_product_id")
        if not product:
            product = (await api.create_product(plan["_id"], plan["name"]))["id"]
            await self._plans.update(plan["_id"], {"stripe_product_id": product})
        price = await api.create_price(plan["_id"], product, amount, currency, interval)
        await self._repo.add_price(price["id"], plan["_id"], amount, currency, interval, to_ms(now()))
        return str(price["id"])

    async def mirror_plan_by_id(self, actor: Principal, plan_id: str, ip: str) -> list[dict[str, Any]]:
        """Mirror the plan's current terms now (checkout also does it on first need) and list
        every price version it has had."""
        self._stripe()
        plan = await self._plans.get(plan_id)
        if plan is None:
            raise errors.NotFound("No such plan.", code="plan_not_found")
        price = await self.mirror_plan(plan)
        await self._audit.record(actor, "plan.stripe_price", target_type="plan", target_id=plan_id, ip=ip,
                                 details={"price_id": price})
        return await self.plan_versions(plan_id)

    async def plan_versions(self, plan_id: str) -> list[dict[str, Any]]:
        return [{"price_id": p["_id"], "amount": p["amount"], "currency": p["currency"], "interval": p["interval"],
                 "created_at": iso(p["created_ms"])} for p in await self._repo.prices_of(plan_id)]

    async def create_promotion(self, actor: Principal, code: str, params: dict[str, Any],
                               code_params: dict[str, Any], ip: str) -> dict[str, Any]:
        """A discount (Stripe coupon) and the code customers type for it."""
        api = self._stripe()
        if await api.find_promotion_code(code) is not None:
            raise errors.Conflict("That promotion code exists already.", code="promotion_code_taken")
        coupon = await api.create_coupon(f"nameless-{code.lower()}-{time.time_ns()}", params)
        promotion = await api.create_promotion_code(code, coupon["id"], code_params)
        await self._audit.record(actor, "promotion.create", target_type="promotion", target_id=promotion["id"],
                                 ip=ip, details={"code": code, **params, **code_params})
        return {"code": promotion.get("code", code), "promotion_code_id": promotion["id"], "coupon_id": coupon["id"]}

    # --- billing history -----------------------------------------------------------------

    async def invoices(self, user_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        page = await self._repo.invoices(user_id, limit, cursor)
        return {"items": [invoice_view(i) for i in page.items], "next_cursor": page.next_cursor}

    async def invoice(self, user_id: str, invoice_id: str) -> dict[str, Any]:
        doc = await self._repo.invoice(user_id, invoice_id)
        if doc is None:
            raise errors.NotFound("No such invoice.", code="invoice_not_found")
        return invoice_view(doc)

    # --- webhooks ------------------------------------------------------------------------

    async def receive(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """Verify one webhook delivery and apply its event once."""
        if not self._config.webhook_secret:
            raise self._missing("STRIPE_WEBHOOK_SECRET")
        self._stripe()
        try:
            event = verify_event(payload, signature, self._config.webhook_secret, self._config.webhook_tolerance)
        except BadSignature as exc:
            raise errors.BadRequest(f"The Stripe signature does not verify: {exc}.",
                                    code="invalid_signature") from None
        event_id, event_type = event.get("id"), event.get("type")
        obj = (event.get("data") or {}).get("object")
        if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(obj, dict):
            raise errors.BadRequest("The event has no id, type or object.", code="invalid_event")
        claim = await self._repo.claim_event(event_id, event_type, to_ms(now()), self._config.event_lease * 1000)
        if claim.outcome == "applied":
            return {"received": True, "duplicate": True}
        if claim.outcome == "in_progress":  # not 2xx: Stripe delivers it again later
            wait = max(1, -(-(claim.lease_until_ms - to_ms(now())) // 1000))
            raise errors.Conflict("This event is being applied by another delivery; try again later.",
                                  code="event_in_progress", details={"retry_after": wait},
                                  headers={"Retry-After": str(wait)})
        held = Held(event_id, claim)
        try:
            if claim.attempts > 1:
                await self._replay_notices(held)
            await self._apply(held, event_type, obj)
        except BaseException:
            await self._repo.release_event(event_id, claim)  # Stripe's retry applies it
            raise
        if not await self._repo.finish_event(event_id, claim, to_ms(now())):
            log.warning("a webhook event outlived its lease", extra={"event_type": event_type})
        return {"received": True, "duplicate": False}

    async def _apply(self, held: Held, event_type: str, obj: dict[str, Any]) -> None:
        if event_type == "checkout.session.completed":
            user_id = obj.get("client_reference_id")
            customer = _id_of(obj.get("customer"))
            if isinstance(user_id, str) and customer and await self._repo.user_of(customer) is None:
                await self._repo.link_customer(user_id, customer, to_ms(now()))
            if _id_of(obj.get("subscription")):
                await self.sync_subscription(_id_of(obj["subscription"]) or "", held)
        elif event_type in SUBSCRIPTION_EVENTS:
            await self.sync_subscription(str(obj.get("id")), held)
        elif event_type in INVOICE_EVENTS:
            invoice = await self.sync_invoice(str(obj.get("id")))
            if invoice is not None and event_type == "invoice.paid":
                await self._receipt(held, invoice)
            subscription = invoice["subscription_id"] if invoice is not None else _subscription_of_invoice(obj)
            if subscription:
                await self.sync_subscription(subscription, held)
        elif event_type == "invoice.upcoming":
            user_id = await self._repo.user_of(_id_of(obj.get("customer")) or "")
            if user_id is not None:
                amount = int(obj.get("amount_due") or 0) / 100
                await self._tell(user_id, "Your subscription renews soon",
                                 f"Your next payment of {amount:.2f} {str(obj.get('currency', '')).upper()} "
                                 f"is due on {iso(int(obj.get('next_payment_attempt') or 0) * 1000) or 'renewal'}.",
                                 {})

    async def _receipt(self, held: Held, invoice: dict[str, Any]) -> None:
        """One receipt per paid invoice, whichever event first tells of the payment."""
        notice = {"title": "Payment received", "data": {"invoice_id": invoice["_id"]},
                  "body": f"We received {invoice['amount_paid'] / 100:.2f} {str(invoice['currency']).upper()}. "
                          "Thank you."}
        key = f"receipt_{invoice['_id']}"
        await self._repo.hold_notices(held.event_id, held.claim, key, {
            "kind": "receipt", "user_id": invoice["user_id"], "invoice_id": invoice["_id"], "notices": [notice]})
        if await self._repo.claim_receipt(invoice["_id"], held.event_id):
            await self._tell(invoice["user_id"], notice["title"], notice["body"], notice["data"])
        await self._repo.drop_notices(held.event_id, held.claim, key)

    async def sync_subscription(self, subscription_id: str, held: Held | None = None) -> None:
        started = time.time_ns()
        try:
            sub = await self._stripe().subscription(subscription_id)
        except errors.NotFound:
            log.warning("a webhook named a subscription Stripe does not have", extra={"id": subscription_id})
            return
        await self._apply_subscription(sub, started, held)

    async def sync_invoice(self, invoice_id: str) -> dict[str, Any] | None:
        started = time.time_ns()
        try:
            invoice = await self._stripe().invoice(invoice_id)
        except errors.NotFound:
            log.warning("a webhook named an invoice Stripe does not have", extra={"id": invoice_id})
            return None
        user_id = await self._repo.user_of(_id_of(invoice.get("customer")) or "")
        if user_id is None:
            return None
        doc = {
            "_id": invoice["id"], "user_id": user_id, "customer_id": _id_of(invoice.get("customer")),
            "subscription_id": _subscription_of_invoice(invoice), "number": invoice.get("number"),
            "status": invoice.get("status"), "amount_due": int(invoice.get("amount_due") or 0),
            "amount_paid": int(invoice.get("amount_paid") or 0), "currency": invoice.get("currency"),
            "hosted_invoice_url": invoice.get("hosted_invoice_url"), "invoice_pdf": invoice.get("invoice_pdf"),
            "created": int(invoice.get("created") or invoice.get("date") or 0),
        }
        await self._repo.put_invoice(doc, started)
        return doc

    async def _record_of(self, sub: dict[str, Any], synced_ns: int) -> tuple[str, dict[str, Any]] | None:
        customer = _id_of(sub.get("customer"))
        user_id = await self._repo.user_of(customer or "")
        if user_id is None:
            log.warning("a subscription of a customer no account has", extra={"id": sub.get("id")})
            return None
        price = _price_of(sub)
        plan_id = (await self._repo.plan_of_price(price) if price else None) or (sub.get("metadata") or {}).get(
            "plan_id")
        if plan_id is None:
            log.warning("a subscription to a price no plan has", extra={"id": sub.get("id")})
            return None
        status = RECORD_STATUS.get(str(sub.get("status")), "canceled")
        record: dict[str, Any] = {
            "plan_id": plan_id, "status": status, "source": "stripe",
            "current_period_end_ms": _period(sub, "current_period_end") * 1000,
            "cancel_at_period_end": bool(sub.get("cancel_at_period_end")),
            "stripe_subscription_id": sub["id"], "stripe_customer_id": customer, "stripe_status": sub.get("status"),
            "stripe_price_id": price, "stripe_created": int(sub.get("created") or sub.get("start_date") or 0),
            "stripe_synced_ns": synced_ns, "updated_ms": to_ms(now()),
        }
        if status == "past_due":  # the renewal failed when the current period began
            record["grace_until_ms"] = (_period(sub, "current_period_start") * 1000
                                        + self._config.grace_days * DAY_MS)
        return user_id, record

    @staticmethod
    def _supersedes(record: dict[str, Any], stored: dict[str, Any] | None, at_ms: int) -> bool:
        """Whether `record` (a fresh fetch) should replace what the account has."""
        if stored is None:
            return True
        incoming_live = record["status"] in ENTITLED_STATUSES
        if stored.get("source") != "stripe":  # a complimentary grant gives way to a live subscription only
            return incoming_live or not entitles(stored, at_ms)
        if stored.get("stripe_subscription_id") == record["stripe_subscription_id"]:
            return record["stripe_synced_ns"] > int(stored.get("stripe_synced_ns") or 0)
        stored_live = stored.get("status") in ENTITLED_STATUSES
        if incoming_live != stored_live:
            return incoming_live
        return record["stripe_created"] >= int(stored.get("stripe_created") or 0)

    async def _apply_subscription(self, sub: dict[str, Any], synced_ns: int, held: Held | None = None) -> None:
        made = await self._record_of(sub, synced_ns)
        if made is None:
            return
        user_id, record = made
        plan = await self._plans.get(record["plan_id"])
        key = f"subscription_{user_id}"
        for _ in range(20):
            stored = await self._plans.subscription(user_id)
            if not self._supersedes(record, stored, to_ms(now())):
                return
            changed = stored is None or any(stored.get(k) != record.get(k) for k in WATCHED)
            notices = self._notices(stored, record, plan) if changed else []
            if held is not None and changed:  # written before the record: a crash in between loses nothing
                await self._repo.hold_notices(held.event_id, held.claim, key, {
                    "kind": "subscription", "user_id": user_id, "synced_ns": synced_ns, "notices": notices})
            if await self._plans.replace_subscription_if(user_id, stored, record):
                break
        else:
            raise errors.Conflict("The subscription kept changing; try again.", code="subscription_busy")
        if not changed:
            return
        await self._announce(user_id, notices)
        if held is not None:
            await self._repo.drop_notices(held.event_id, held.claim, key)

    async def _announce(self, user_id: str, notices: list[dict[str, Any]]) -> None:
        """Tell playback, the user's sockets and the outbox that the record changed."""
        await self._entitlements.announce_user(user_id)
        view = await self._entitlements.subscription_view(user_id)
        try:
            await self._live.emit_to_user(user_id, "subscription.updated", view)
        except Exception:  # the record is written; the client reads it on reconnect
            log.warning("live subscription emit failed", exc_info=True)
        for notice in notices:
            await self._tell(user_id, notice["title"], notice["body"], notice["data"])

    async def _replay_notices(self, held: Held) -> None:
        """An earlier attempt at this event died: send what it held for a change it did write
        (the record still carries its fetch; a receipt it claimed), drop the rest (this
        attempt writes and tells those itself)."""
        doc = await self._repo.event(held.event_id) or {}
        for key, entry in (doc.get("notices") or {}).items():
            if entry.get("kind") == "subscription":
                stored = await self._plans.subscription(entry["user_id"])
                if stored is not None and stored.get("stripe_synced_ns") == entry["synced_ns"]:
                    await self._announce(entry["user_id"], entry["notices"])
            elif await self._repo.receipt_event_of(entry["invoice_id"]) == held.event_id:
                for notice in entry["notices"]:
                    await self._tell(entry["user_id"], notice["title"], notice["body"], notice["data"])
            await self._repo.drop_notices(held.event_id, held.claim, key)

    @staticmethod
    def _notices(before: dict[str, Any] | None, after: dict[str, Any],
                 plan_doc: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The billing messages a change from `before` to `after` sends."""
        old = before.get("status") if before and before.get("source") == "stripe" else None
        new = after["status"]
        plan = (plan_doc or {}).get("name", "your plan")
        end = iso(after.get("current_period_end_ms"))
        data = {"status": new, "plan_id": after["plan_id"]}

        def notice(title: str, body: str) -> list[dict[str, Any]]:
            return [{"title": title, "body": body, "data": data}]

        if new != old:
            if new in ("active", "trialing") and old == "past_due":
                return notice("Payment received", f"Your {plan} subscription is active again.")
            if new == "active":
                return notice("Subscription active", f"Your {plan} subscription is active.")
            if new == "trialing":
                return notice("Trial started", f"Your {plan} trial runs until {end}.")
            if new == "past_due":
                until = iso(after.get("grace_until_ms"))
                return notice("Payment failed", f"We could not charge your card. Update it before {until} to keep "
                                                "watching.")
            if new == "canceled":
                return notice("Subscription ended", f"Your {plan} subscription has ended.")
        elif bool(before and before.get("cancel_at_period_end")) != after["cancel_at_period_end"]:
            if after["cancel_at_period_end"]:
                return notice("Subscription canceled", f"Your {plan} subscription ends on {end}.")
            return notice("Subscription resumed", f"Your {plan} subscription renews on {end}.")
        return []

    async def _tell(self, user_id: str, title: str, body: str, data: dict[str, Any]) -> None:
        await self._notify(user_id, "billing", title, body, data)
