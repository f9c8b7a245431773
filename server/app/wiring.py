"""Putting the product together. Each domain's wiring module (`server.app.domains`) gets
the platform and the services of the domains wired before it, and returns what it
contributes: services, routes per group, Socket.IO namespaces, background work, start and
stop steps. The app iterates that list; nothing else knows who needs whom. Start steps run
in wiring order and stop steps in reverse; no order among background jobs is promised.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from config import Settings
from handlers.routing import RouteGroup, Rule
from server.platform import Platform

T = TypeVar("T")
Step = Callable[[], Awaitable[None]]

log = logging.getLogger(__name__)

# A stop step or job that has not finished by then is abandoned (and logged), so one part
# stuck on a dependency cannot keep the process from exiting.
STOP_STEP_S = 10.0


async def bounded(what: Any, step: Step) -> None:
    try:
        await asyncio.wait_for(step(), STOP_STEP_S)
    except TimeoutError:
        log.warning("stop step abandoned after %.0f s", STOP_STEP_S, extra={"step": _name(what)})
    except Exception:
        log.exception("stop step failed", extra={"step": _name(what)})


def _name(what: Any) -> str:
    return getattr(what, "__qualname__", None) or type(what).__qualname__


class Background(Protocol):
    """Work that runs beside the requests in a process that runs job workers."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Contribution:
    services: dict[str, Any] = field(default_factory=dict)
    routes: dict[RouteGroup, list[Rule]] = field(default_factory=dict)  # per group, relative to its prefix
    namespaces: list[Any] = field(default_factory=list)
    jobs: list[Background] = field(default_factory=list)
    start: list[Step] = field(default_factory=list)
    stop: list[Step] = field(default_factory=list)


class Services:
    """Every domain's services by name: for the app factory, the admin commands and tests."""

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}

    def add(self, name: str, service: Any) -> None:
        if name in self._items:
            raise ValueError(f"two domains provide a service named {name!r}")
        self._items[name] = service

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_items"][name]
        except KeyError:
            raise AttributeError(f"no service named {name!r}") from None


class Wiring:
    """What a domain's wiring module is handed: the platform, the services so far, and the
    one way to get a repository."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.settings: Settings = platform.settings
        self.services = Services()
        self.index_specs: dict[str, list[Any]] = {}
        self._repos: dict[type, Any] = {}
        self._shared: dict[str, Any] = {}

    def repo(self, cls: type[T]) -> T:
        """The process's one instance of a repository. Its module's `INDEXES` are recorded
        here, and created before the app serves, so a repository in use can never miss
        its indexes."""
        if cls not in self._repos:
            if all(built.__module__ != cls.__module__ for built in self._repos):
                for collection, indexes in getattr(importlib.import_module(cls.__module__), "INDEXES", {}).items():
                    self.index_specs.setdefault(collection, []).extend(indexes)
            self._repos[cls] = cls(self.platform.db)  # type: ignore[call-arg]
        return self._repos[cls]

    async def fleet_claim(self, job: str, interval_s: float) -> bool:
        """Whether this process runs this tick of a fleet-wide job: the first to ask in an
        interval gets it (a key that lapses a little before the next tick)."""
        return await self.platform.ephemeral.set(f"jobs:{job}", str(os.getpid()),
                                                 interval_s * 0.9, only_new=True)

    def once(self, name: str, build: Callable[[], T]) -> T:
        """A collaborator two domains need before either is wired, built by whichever asks first."""
        if name not in self._shared:
            self._shared[name] = build()
        return self._shared[name]


@dataclass
class Product:
    """The wired product of one process."""

    services: Services
    contributions: list[Contribution]
    index_specs: dict[str, list[Any]]
    run_jobs: bool

    def routes(self, group: RouteGroup) -> list[Rule]:
        return [rule for c in self.contributions for rule in c.routes.get(group, [])]

    @property
    def namespaces(self) -> list[Any]:
        return [ns for c in self.contributions for ns in c.namespaces]

    async def start(self) -> None:
        for contribution in self.contributions:
            for step in contribution.start:
                await step()
        if self.run_jobs:
            for contribution in self.contributions:
                for job in contribution.jobs:
                    await job.start()

    async def stop(self) -> None:
        for contribution in reversed(self.contributions):
            for job in reversed(contribution.jobs):
                await bounded(job, job.stop)
        for contribution in reversed(self.contributions):
            for step in reversed(contribution.stop):
                await bounded(step, step)


def build(platform: Platform, domains: list[Callable[[Wiring], Contribution]]) -> Product:
    ctx = Wiring(platform)
    contributions = []
    for wire in domains:
        contribution = wire(ctx)
        for name, service in contribution.services.items():
            ctx.services.add(name, service)
        contributions.append(contribution)
    return Product(ctx.services, contributions, ctx.index_specs, run_jobs=platform.settings.job_workers > 0)
