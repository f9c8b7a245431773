"""The composition root: services by name, start and stop order, background work only
where job workers run."""

from __future__ import annotations

import asyncio

import pytest

from jobs.periodic import Periodic
from server.app.wiring import Contribution, Product, Services, Wiring


def test_two_domains_cannot_provide_the_same_service_name() -> None:
    services = Services()
    services.add("catalog", object())
    with pytest.raises(ValueError, match="catalog"):
        services.add("catalog", object())
    with pytest.raises(AttributeError, match="nope"):
        _ = services.nope


class Recorder:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    async def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def product(log: list[str], run_jobs: bool) -> Product:
    def contribution(name: str) -> Contribution:
        step = Recorder(log, name)
        return Contribution(start=[step.start], stop=[step.stop], jobs=[Recorder(log, f"{name} job")])

    return Product(Services(), [contribution("first"), contribution("second")], {}, run_jobs=run_jobs)


async def test_start_in_wiring_order_then_jobs_and_stop_in_reverse() -> None:
    log: list[str] = []
    served = product(log, run_jobs=True)
    await served.start()
    await served.stop()
    assert log == ["start first", "start second", "start first job", "start second job",
                   "stop second job", "stop first job", "stop second", "stop first"]


async def test_a_process_without_job_workers_runs_no_background_work() -> None:
    log: list[str] = []
    served = product(log, run_jobs=False)
    await served.start()
    assert log == ["start first", "start second"]


async def test_a_fleet_job_tick_is_granted_to_one_process_until_its_interval_lapses(start_server, redis_url) -> None:
    first = await start_server(REDIS_URL=redis_url)
    second = await start_server(REDIS_URL=redis_url, NAMELESS_MONGO_DB=first.runtime.settings.mongo_db)
    a, b = Wiring(first.runtime.platform), Wiring(second.runtime.platform)
    assert await a.fleet_claim("rollup", 0.5) is True
    assert await b.fleet_claim("rollup", 0.5) is False
    assert await a.fleet_claim("rollup", 0.5) is False  # once per interval, whoever asks
    assert await b.fleet_claim("other job", 0.5) is True
    while not await b.fleet_claim("rollup", 0.5):  # the grant lapses before the next tick
        await asyncio.sleep(0.05)


async def test_a_periodic_job_runs_only_the_ticks_it_is_granted() -> None:
    ran: list[int] = []

    async def body() -> None:
        ran.append(1)

    granted = False

    async def claim() -> bool:
        return granted

    job = Periodic("claimed", 0.01, body, claim=claim)
    await job.start()
    try:
        while job.runs < 5:
            await asyncio.sleep(0.01)
        assert ran == []
        granted = True
        while not ran:
            await asyncio.sleep(0.01)
    finally:
        await job.stop()
