"""Staff administration of users: search, view, suspend, roles, staff accounts. Every
change is written to the audit log."""

from __future__ import annotations

from typing import Any

from server.core import errors
from server.core.permissions import Principal, Role, may_grant
from server.identity.accounts import AccountService, account_view
from server.identity.sessions import SessionService
from server.notifications.inbox import NotificationService
from server.staff.audit import AuditLog
from storage.identity.identities import IdentityRepository
from storage.identity.users import UserRepository


class StaffService:
    def __init__(self, users: UserRepository, identities: IdentityRepository, accounts: AccountService,
                 sessions: SessionService, audit: AuditLog, notifications: NotificationService) -> None:
        self._notifications = notifications
        self._users = users
        self._identities = identities
        self._accounts = accounts
        self._sessions = sessions
        self._audit = audit

    async def search(self, text: str | None, role: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        """Accounts by email prefix and role, one page at a time."""
        page = await self._users.search(text, role, limit, cursor)
        return {"items": [account_view(u, []) for u in page.items], "next_cursor": page.next_cursor}

    async def view(self, user_id: str) -> dict[str, Any]:
        user = await self._accounts.get(user_id)
        return await self._accounts.view(user)

    async def set_status(self, actor: Principal, user_id: str, status: str, reason: str, ip: str) -> dict[str, Any]:
        user = await self._accounts.get(user_id)
        if user_id == actor.user_id:
            raise errors.Forbidden("You cannot suspend yourself.", code="self_suspension")
        if Role.SUPER_ADMIN in user.get("roles", []) and Role.SUPER_ADMIN not in actor.roles:
            raise errors.Forbidden("Only a super admin can suspend a super admin.", code="forbidden")
        await self._users.update(user_id, {"status": status})
        ended = 0
        if status == "suspended":
            ended = await self._sessions.revoke_all(user_id, reason="account_suspended")
        await self._audit.record(actor, f"user.{'suspend' if status == 'suspended' else 'unsuspend'}",
                                 target_type="user", target_id=user_id, ip=ip,
                                 details={"reason": reason, "sessions_ended": ended})
        await self._announce(user_id)
        return await self.view(user_id)

    async def set_roles(self, actor: Principal, user_id: str, roles: list[str], ip: str) -> dict[str, Any]:
        user = await self._accounts.get(user_id)
        before = set(user.get("roles", []))
        after = set(roles) | {Role.VIEWER.value}
        for role in before ^ after:
            if not may_grant(actor, role):
                raise errors.Forbidden(f"You cannot grant or remove the {role} role.", code="role_not_grantable")
        if user_id == actor.user_id and Role.SUPER_ADMIN in before - after:
            if await self._users.count_with_role(Role.SUPER_ADMIN.value) <= 1:
                raise errors.Conflict("The last super admin cannot step down.", code="last_super_admin")
        await self._users.update(user_id, {"roles": sorted(after)})
        await self._audit.record(actor, "user.roles", target_type="user", target_id=user_id, ip=ip,
                                 details={"before": sorted(before), "after": sorted(after)})
        await self._announce(user_id)
        return await self.view(user_id)

    async def _announce(self, user_id: str) -> None:
        """Access is checked when a socket connects; a later change reaches open sockets
        (on every process) through this announcement, like a session revocation."""
        await self._sessions.access_changed(user_id)

    async def notify_user(self, actor: Principal, user_id: str, title: str, body: str, ip: str) -> dict[str, Any]:
        """An account notice from staff: inbox, live on every device, push/email per preferences."""
        await self._accounts.get(user_id)
        created = await self._notifications.notify(user_id, "account", title, body, {"from": "staff"})
        await self._audit.record(actor, "user.notify", target_type="user", target_id=user_id, ip=ip,
                                 details={"title": title})
        return {"delivered_in_app": created is not None, "notification": created}

    async def create_staff(self, actor: Principal, email: str, display_name: str, roles: list[str],
                           ip: str) -> dict[str, Any]:
        for role in roles:
            if not may_grant(actor, role):
                raise errors.Forbidden(f"You cannot grant the {role} role.", code="role_not_grantable")
        user = await self._accounts.create_user(email, display_name, password=None,
                                                roles=sorted(set(roles) | {Role.VIEWER.value}))
        # The new staff member chooses their own password through the reset link.
        await self._accounts.forgot_password(email)
        await self._audit.record(actor, "staff.create", target_type="user", target_id=str(user["_id"]), ip=ip,
                                 details={"email": user["email"], "roles": sorted(roles)})
        return account_view(user, [])
