"""Recording staff actions. Every admin-side change calls `record`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.core.clock import iso
from server.core.permissions import Principal
from storage.staff.audit import AuditRepository


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

    async def page(self, actor_id: str | None, target_id: str | None, limit: int,
                   cursor: str | None) -> dict[str, Any]:
        """Newest first, optionally one actor's or one target's entries."""
        page = await self._repo.page(actor_id, target_id, limit, cursor)
        return {"items": [audit_view(e) for e in page.items], "next_cursor": page.next_cursor}


def audit_view(entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(entry["_id"]), "actor_id": entry["actor_id"], "action": entry["action"],
            "target_type": entry["target_type"], "target_id": entry["target_id"],
            "details": entry.get("details", {}), "ip": entry.get("ip"), "at": iso(entry["at"])}
