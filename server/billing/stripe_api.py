"""The Stripe calls billing makes, through the stripe library's async client (on httpx),
so no request ever blocks the event loop. Objects come back as plain dicts; library
errors become the project's errors here, so callers never see a stripe type.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe

from server.core import errors

log = logging.getLogger(__name__)


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class BadSignature(Exception):
    """A webhook whose signature or timestamp does not verify."""


def verify_event(payload: bytes, header: str | None, secret: str, tolerance: int) -> dict[str, Any]:
    """The event Stripe signed: stripe's own check of the `t=...,v1=...` header (HMAC-SHA256
    of `t.payload` with the endpoint's secret, timestamp no older than `tolerance` seconds)."""
    try:
        event = stripe.Webhook.construct_event(payload, header, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        raise BadSignature(str(exc).split(";")[0][:120]) from None
    except (ValueError, UnicodeDecodeError):
        raise BadSignature("the signed payload is not a JSON event") from None
    return _plain(event)


class StripeApi:
    def __init__(self, secret_key: str, api_base: str = "") -> None:
        self._http = stripe.HTTPXClient(timeout=20)
        self._client = stripe.StripeClient(
            secret_key, http_client=self._http, max_network_retries=2,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
        )

    async def close(self) -> None:
        await self._http.close_async()

    async def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return _plain(await call(*args, **kwargs))
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise errors.NotFound(f"Stripe has no such {what}.", code="stripe_not_found") from None
            log.warning("stripe refused a request", extra={"what": what, "status": exc.http_status,
                                                            "stripe_code": exc.code})
            raise errors.ServiceUnavailable("The payment provider refused the request.",
                                            code="payment_provider_error") from None
        except stripe.StripeError as exc:
            log.warning("stripe call failed", extra={"what": what, "status": exc.http_status,
                                                     "error": type(exc).__name__})
            raise errors.ServiceUnavailable("The payment provider is unavailable; try again.",
                                            code="payment_provider_unavailable") from None

    async def create_customer(self, user_id: str, email: str) -> dict[str, Any]:
        return await self._call("customer", self._client.v1.customers.create_async,
                                {"email": email, "metadata": {"user_id": user_id}},
                                {"idempotency_key": f"nameless-customer-{user_id}"})

    async def create_product(self, plan_id: str, name: str) -> dict[str, Any]:
        return await self._call("product", self._client.v1.products.create_async,
                                {"name": name, "metadata": {"plan_id": plan_id}},
                                {"idempotency_key": f"nameless-product-{plan_id}"})

    async def create_price(self, plan_id: str, product_id: str, amount: int, currency: str,
                           interval: str) -> dict[str, Any]:
        return await self._call("price", self._client.v1.prices.create_async, {
            "product": product_id, "unit_amount": amount, "currency": currency,
            "recurring": {"interval": interval}, "metadata": {"plan_id": plan_id},
        }, {"idempotency_key": f"nameless-price-{plan_id}-{amount}-{currency}-{interval}"})

    async def create_coupon(self, coupon_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self._call("coupon", self._client.v1.coupons.create_async, {"id": coupon_id, **params})

    async def create_promotion_code(self, code: str, coupon_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self._call("promotion code", self._client.v1.promotion_codes.create_async,
                                {"code": code, "promotion": {"type": "coupon", "coupon": coupon_id}, **params})

    async def find_promotion_code(self, code: str) -> dict[str, Any] | None:
        """The active promotion code a customer typed, or None."""
        found = await self._call("promotion code", self._client.v1.promotion_codes.list_async,
                                 {"code": code, "active": True, "limit": 1})
        items = found.get("data") or []
        return items[0] if items else None

    async def create_checkout_session(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._call("checkout session", self._client.v1.checkout.sessions.create_async, params)

    async def create_portal_session(self, customer_id: str, return_url: str) -> dict[str, Any]:
        return await self._call("portal session", self._client.v1.billing_portal.sessions.create_async,
                                {"customer": customer_id, "return_url": return_url})

    async def subscription(self, subscription_id: str) -> dict[str, Any]:
        return await self._call("subscription", self._client.v1.subscriptions.retrieve_async, subscription_id)

    async def update_subscription(self, subscription_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self._call("subscription", self._client.v1.subscriptions.update_async, subscription_id, params)

    async def invoice(self, invoice_id: str) -> dict[str, Any]:
        return await self._call("invoice", self._client.v1.invoices.retrieve_async, invoice_id)
