"""The composition root: services by name, start and stop order, background work only
where job workers run."""

from __future__ import annotations

import pytest

from server.app.wiring import Contribution, Product, Services


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
