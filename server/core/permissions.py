"""Roles and permissions: the one place that says who may do what, for REST and real time."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    SUPPORT_AGENT = "support_agent"
    CONTENT_MANAGER = "content_manager"
    ADMIN = "admin"
    SUPER_ADMIN = "super_admin"


STAFF_ROLES = frozenset({Role.SUPPORT_AGENT, Role.CONTENT_MANAGER, Role.ADMIN, Role.SUPER_ADMIN})

# Each permission names the roles that hold it; super_admin holds every permission.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "staff.portal": STAFF_ROLES,
    "users.read": frozenset({Role.SUPPORT_AGENT, Role.ADMIN}),
    "users.suspend": frozenset({Role.ADMIN}),
    "users.notify": frozenset({Role.SUPPORT_AGENT, Role.ADMIN}),
    "users.roles": frozenset({Role.ADMIN}),
    "users.entitlements": frozenset({Role.ADMIN}),
    "staff.manage": frozenset({Role.ADMIN}),
    "audit.read": frozenset({Role.ADMIN}),
    "outbox.read": frozenset({Role.SUPPORT_AGENT, Role.ADMIN}),
    "outbox.retry": frozenset({Role.ADMIN}),
    "notifications.broadcast": frozenset({Role.ADMIN}),
    "content.manage": frozenset({Role.CONTENT_MANAGER}),
    "reviews.moderate": frozenset({Role.CONTENT_MANAGER}),
    "support.handle": frozenset({Role.SUPPORT_AGENT}),
    "support.supervise": frozenset({Role.ADMIN}),  # team keys: who may read support conversations
    "ops.view": frozenset({Role.ADMIN}),  # operations staff are admins until an ops role exists
    "plans.manage": frozenset({Role.ADMIN}),
    "announcements.send": frozenset({Role.ADMIN}),
    "reports.read": frozenset({Role.ADMIN}),
}

# Roles only a super admin may grant or take away.
PRIVILEGED_ROLES = frozenset({Role.ADMIN, Role.SUPER_ADMIN})


@dataclass(frozen=True)
class Principal:
    """Who is making a request: resolved once per request or socket connection."""

    user_id: str
    session_id: str
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)

    def can(self, permission: str) -> bool:
        if Role.SUPER_ADMIN in self.roles:
            return True
        allowed = PERMISSIONS.get(permission)
        if allowed is None:
            raise KeyError(f"unknown permission {permission!r}")
        return bool(self.roles & allowed)


def may_grant(actor: Principal, role: str) -> bool:
    """Admins manage staff roles; only super admins hand out admin or super_admin."""
    if Role.SUPER_ADMIN in actor.roles:
        return True
    return actor.can("users.roles") and role not in PRIVILEGED_ROLES
