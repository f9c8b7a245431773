"""Recording staff actions. Every admin-side change calls `record`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.permissions import Principal
from storage.audit import AuditRepository


class AuditLog:
    def __init__(self, repo: AuditRepository) -> None:
        self._repo = repo

    async def record(
        self,
        actor: Principal | None,
        action: str,
        *,
        target_type: str,
        target_id: str,
        ip: str = "-",
        details: dict[str, Any] | None = None,
    ) -> None:
        await self._repo.append(
            {
                "actor_id": actor.user_id if actor else None,
                "actor_roles": sorted(actor.roles) if actor else [],
                "action": action,
                "target_type": target_type,
                "target_id": target_id,
                "details": details or {},
                "ip": ip,
                "at": dt.datetime.now(dt.UTC),
            }
        )
