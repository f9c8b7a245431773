"""Staff: user administration, staff accounts, the audit log and the staff pages."""

from __future__ import annotations

from handlers.routing import API, PAGES, VENDOR
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
        routes={
            API: [*users.routes(staff), *audit_handlers.routes(audit)],
            PAGES: pages.routes(s.accounts, s.sessions),
            VENDOR: pages.vendor_routes(),
        },
    )
