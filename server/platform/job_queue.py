"""The in-process worker: claims due jobs, runs them with a renewed lease, retries with
backoff. Every process may run one; claims are atomic, so each job runs once at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from server.core import errors
from server.core.clock import iso, now, to_ms
from storage.job_queue import JobRepository

log = logging.getLogger("nameless.jobs")

Progress = Callable[[float], Awaitable[None]]
JobHandler = Callable[[dict[str, Any], Progress], Awaitable[dict[str, Any]]]


class JobLost(Exception):
    """Another worker took this job over (our lease ran out): stop without writing."""


class JobQueue:
    def __init__(self, repo: JobRepository, *, lease_ms: int = 30_000, poll_s: float = 0.5,
                 concurrency: int = 1) -> None:
        self._repo = repo
        self._handlers: dict[str, JobHandler] = {}
        self._give_up: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}
        self._lease_ms = lease_ms
        self._poll_s = poll_s
        self._concurrency = concurrency
        self.worker_id = f"{os.getpid()}:{secrets.token_hex(3)}"
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()

    def register(self, kind: str, handler: JobHandler,
                 gave_up: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self._handlers[kind] = handler
        if gave_up is not None:
            self._give_up[kind] = gave_up

    async def submit(self, kind: str, payload: dict[str, Any], *, max_attempts: int = 3) -> dict[str, Any]:
        job = await self._repo.enqueue(kind, payload, now_ms=to_ms(now()), max_attempts=max_attempts)
        self._wake.set()
        return job

    async def view(self, job_id: str) -> dict[str, Any]:
        """A job's state and progress as staff see it; 404 when there is no such job."""
        job = await self._repo.get(job_id)
        if job is None:
            raise errors.NotFound("No such job.", code="job_not_found")
        return {
            "id": job["_id"], "kind": job["kind"], "status": job["status"], "progress": round(job["progress"], 3),
            "attempts": job["attempts"], "max_attempts": job["max_attempts"], "error": job.get("error"),
            "result": job.get("result"), "created_at": iso(job["created_ms"]), "updated_at": iso(job["updated_ms"]),
        }

    async def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._loop()) for _ in range(self._concurrency)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(self) -> None:
        while True:
            try:
                ran = await self.run_one()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job loop error")
                ran = False
            if not ran:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def run_one(self) -> bool:
        """Claim and run one due job; False when none was due."""
        job = await self._repo.claim(list(self._handlers), self.worker_id, to_ms(now()), self._lease_ms)
        if job is None:
            return False
        handler = self._handlers[job["kind"]]
        last = {"progress": float(job.get("progress", 0.0))}

        async def progress(value: float) -> None:
            last["progress"] = max(0.0, min(1.0, value))
            if not await self._repo.heartbeat(job["_id"], self.worker_id, to_ms(now()), self._lease_ms,
                                              last["progress"]):
                raise JobLost(job["_id"])

        async def keep_lease() -> None:
            while True:
                await asyncio.sleep(self._lease_ms / 3000)
                await progress(last["progress"])

        keeper = asyncio.ensure_future(keep_lease())
        try:
            result = await handler(job, progress)
        except JobLost:
            log.warning("job taken over by another worker", extra={"job": job["_id"]})
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            retry = job["attempts"] < job["max_attempts"]
            delay_ms = 2_000 * 2 ** (job["attempts"] - 1)
            log.warning("job failed", extra={"job": job["_id"], "kind": job["kind"], "retry": retry,
                                             "error": f"{type(exc).__name__}: {exc}"[:300]})
            await self._repo.fail(job["_id"], self.worker_id, to_ms(now()), f"{type(exc).__name__}: {exc}",
                                  retry_at_ms=to_ms(now()) + delay_ms if retry else None)
            if not retry and job["kind"] in self._give_up:
                await self._give_up[job["kind"]](job)
            return True
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, JobLost):
                await keeper
        await self._repo.finish(job["_id"], self.worker_id, to_ms(now()), result)
        return True
