"""Stripe for the billing tests: localstripe with the stand-in in front, and the app
pointed at it."""

from __future__ import annotations

import pytest

from tests.fakes.stripe import running_stripe


@pytest.fixture
async def stripe_fake():
    async with running_stripe() as standin:
        yield standin


@pytest.fixture
async def billing_server(start_server, stripe_fake):
    return await start_server(**stripe_fake.env())
