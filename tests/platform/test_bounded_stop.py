"""A stop step stuck on a dependency is abandoned after its bound, and the steps after it
still run, so a process always gets to exit."""

from __future__ import annotations

import asyncio
import logging

import pytest

from server.app import wiring
from server.app.wiring import Contribution, Product, Services

pytestmark = pytest.mark.asyncio


async def test_a_stuck_stop_step_is_abandoned_and_the_others_still_run(monkeypatch, caplog) -> None:
    monkeypatch.setattr(wiring, "STOP_STEP_S", 0.2)
    ran: list[str] = []

    async def stuck() -> None:
        await asyncio.Event().wait()

    async def failing() -> None:
        raise RuntimeError("boom")

    async def last() -> None:
        ran.append("last")

    product = Product(Services(), [Contribution(stop=[last]), Contribution(stop=[failing, stuck])], {}, False)
    with caplog.at_level(logging.WARNING, logger="server.app.wiring"):
        await asyncio.wait_for(product.stop(), 5)
    assert ran == ["last"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("abandoned" in m for m in messages) and any("failed" in m for m in messages)
