"""Staff: user administration, staff accounts, the audit log and the staff pages."""

from __future__ import annotations

from handlers.staff import audit as audit_handlers
from handlers.staff import pages, users
from server.app.wiring import Contribution, Wiring
from server.staff.audit import AuditLog
from server.staff.users import StaffService
from storage.identity.identities import IdentityRepository
from storage.identity.users import UserRepository
from storage.staff.audit import AuditRepository


def wire(ctx: Wiring) -> Contribution:
    s = ctx.services
    audit = AuditLog(ctx.repo(AuditRepository))
    staff = StaffService(ctx.repo(UserRepository), ctx.repo(IdentityRepository), s.accounts, s.sessions, audit,
                         s.notifications)
    return Contribution(
        services={"audit": audit, "staff": staff},
        api_routes=[*users.routes(staff), *audit_handlers.routes(audit)],
        page_routes=pages.routes(s.accounts, s.sessions),
        vendor_routes=pages.vendor_routes(),
    )
