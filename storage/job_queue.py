"""Durable background jobs: claimed with a lease, so a job whose worker died is taken
again after the lease runs out; attempts are counted and bounded."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from server.core.ids import new_id

INDEXES = {"jobs": [IndexModel([("status", ASCENDING), ("run_after_ms", ASCENDING)], name="due")]}


class JobRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._jobs = db.jobs

    async def enqueue(self, kind: str, payload: dict[str, Any], *, now_ms: int, max_attempts: int = 3,
                      job_id: str | None = None) -> dict[str, Any]:
        doc = {
            "_id": job_id or new_id(), "kind": kind, "payload": payload, "status": "queued", "attempts": 0,
            "max_attempts": max_attempts, "progress": 0.0, "error": None, "run_after_ms": now_ms,
            "lease_until_ms": 0, "created_ms": now_ms, "updated_ms": now_ms, "worker": None,
        }
        await self._jobs.insert_one(doc)
        return doc

    async def get(self, job_id: str) -> dict[str, Any] | None:
        return await self._jobs.find_one({"_id": job_id})

    async def claim(self, kinds: list[str], worker: str, now_ms: int, lease_ms: int) -> dict[str, Any] | None:
        """Atomically take one due job: queued, or running with an expired lease (its worker died)."""
        return await self._jobs.find_one_and_update(
            {
                "kind": {"$in": kinds},
                "$or": [
                    {"status": "queued", "run_after_ms": {"$lte": now_ms}},
                    {"status": "running", "lease_until_ms": {"$lt": now_ms}},
                ],
            },
            {"$set": {"status": "running", "worker": worker, "lease_until_ms": now_ms + lease_ms,
                      "updated_ms": now_ms}, "$inc": {"attempts": 1}},
            sort=[("run_after_ms", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def heartbeat(self, job_id: str, worker: str, now_ms: int, lease_ms: int, progress: float) -> bool:
        """Extend the lease; False if another worker took the job over (we must stop)."""
        result = await self._jobs.update_one(
            {"_id": job_id, "worker": worker, "status": "running"},
            {"$set": {"lease_until_ms": now_ms + lease_ms, "progress": progress, "updated_ms": now_ms}},
        )
        return result.matched_count == 1

    async def finish(self, job_id: str, worker: str, now_ms: int, result: dict[str, Any]) -> bool:
        done = await self._jobs.update_one(
            {"_id": job_id, "worker": worker, "status": "running"},
            {"$set": {"status": "done", "progress": 1.0, "result": result, "updated_ms": now_ms, "error": None}},
        )
        return done.matched_count == 1

    async def fail(self, job_id: str, worker: str, now_ms: int, error: str, *, retry_at_ms: int | None) -> None:
        changes: dict[str, Any] = {"error": error[:500], "updated_ms": now_ms}
        if retry_at_ms is None:
            changes["status"] = "failed"
        else:
            changes.update(status="queued", run_after_ms=retry_at_ms, lease_until_ms=0)
        await self._jobs.update_one({"_id": job_id, "worker": worker, "status": "running"}, {"$set": changes})
