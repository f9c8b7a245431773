"""Staff administration of users and staff, the audit log and the email outbox."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import EmailStr, Field, StringConstraints

from handlers.base import BaseHandler, endpoint
from handlers.models import Account, Body, Page, PageQuery, Text
from server.accounts import account_view
from server.staff import StaffService
from server.timeutil import iso
from storage.audit import AuditRepository
from storage.outbox import OutboxRepository

TAGS = ("admin",)
RoleName = Literal["viewer", "support_agent", "content_manager", "admin", "super_admin"]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class UserQuery(PageQuery):
    q: Annotated[str, StringConstraints(max_length=200)] | None = None
    role: RoleName | None = None


class SuspendBody(Body):
    reason: Reason


class RolesBody(Body):
    roles: list[RoleName] = Field(max_length=5)


class NoticeBody(Body):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class StaffBody(Body):
    email: EmailStr
    display_name: Text
    roles: list[RoleName] = Field(min_length=1, max_length=5)


class AuditQuery(PageQuery):
    actor_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    target_id: Annotated[str, StringConstraints(max_length=64)] | None = None


class OutboxQuery(PageQuery):
    to: Annotated[str, StringConstraints(max_length=320)] | None = None


class StaffHandler(BaseHandler):
    def initialize(self, staff: StaffService) -> None:
        self.staff = staff


class UsersHandler(StaffHandler):
    @endpoint("Search users by email prefix and role", response=Page, permission="users.read", tags=TAGS)
    async def get(self) -> None:
        query = self.parse_query(UserQuery)
        page = await self.staff.search(query.q, query.role, query.limit, query.cursor)
        self.reply({"items": [account_view(u, []) for u in page.items], "next_cursor": page.next_cursor})


class UserHandler(StaffHandler):
    @endpoint("One user", response=Account, permission="users.read", tags=TAGS, errors=(404,))
    async def get(self, user_id: str) -> None:
        self.reply(await self.staff.view(user_id))


class SuspendHandler(StaffHandler):
    @endpoint("Suspend a user: their sessions end at once", body=SuspendBody, response=Account,
              permission="users.suspend", tags=TAGS, errors=(404,))
    async def post(self, user_id: str) -> None:
        body = self.parse(SuspendBody)
        self.reply(await self.staff.set_status(self.user, user_id, "suspended", body.reason, self.client_ip))


class UnsuspendHandler(StaffHandler):
    @endpoint("Lift a suspension", body=SuspendBody, response=Account, permission="users.suspend", tags=TAGS,
              errors=(404,))
    async def post(self, user_id: str) -> None:
        body = self.parse(SuspendBody)
        self.reply(await self.staff.set_status(self.user, user_id, "active", body.reason, self.client_ip))


class RolesHandler(StaffHandler):
    @endpoint("Set a user's roles", body=RolesBody, response=Account, permission="users.roles", tags=TAGS,
              errors=(404, 409))
    async def put(self, user_id: str) -> None:
        body = self.parse(RolesBody)
        self.reply(await self.staff.set_roles(self.user, user_id, body.roles, self.client_ip))


class NoticeHandler(StaffHandler):
    @endpoint("Send an account notice to a user (inbox, live, push/email per their preferences)", body=NoticeBody,
              status=201, permission="users.notify", tags=TAGS, errors=(404,))
    async def post(self, user_id: str) -> None:
        body = self.parse(NoticeBody)
        self.reply(await self.staff.notify_user(self.user, user_id, body.title, body.body, self.client_ip), 201)


class StaffAccountsHandler(StaffHandler):
    @endpoint("Create a staff account; the new member sets a password from the emailed link", body=StaffBody,
              response=Account, status=201, permission="staff.manage", tags=TAGS, errors=(409,))
    async def post(self) -> None:
        body = self.parse(StaffBody)
        created = await self.staff.create_staff(self.user, body.email, body.display_name,
                                                body.roles, self.client_ip)
        self.reply(created, 201)


class AuditHandler(BaseHandler):
    def initialize(self, audit: AuditRepository) -> None:
        self.audit = audit

    @endpoint("The audit log of staff actions, newest first", response=Page, permission="audit.read", tags=TAGS)
    async def get(self) -> None:
        query = self.parse_query(AuditQuery)
        page = await self.audit.page(query.actor_id, query.target_id, query.limit, query.cursor)
        items = [
            {"id": str(e["_id"]), "actor_id": e["actor_id"], "action": e["action"], "target_type": e["target_type"],
             "target_id": e["target_id"], "details": e.get("details", {}), "ip": e.get("ip"), "at": iso(e["at"])}
            for e in page.items
        ]
        self.reply({"items": items, "next_cursor": page.next_cursor})


class OutboxHandler(BaseHandler):
    def initialize(self, outbox: OutboxRepository) -> None:
        self.outbox = outbox

    @endpoint("Emails queued for delivery (links carrying secrets are withheld)", response=Page,
              permission="outbox.read", tags=TAGS)
    async def get(self) -> None:
        query = self.parse_query(OutboxQuery)
        page = await self.outbox.page(query.to.lower() if query.to else None, query.limit, query.cursor)
        items = [
            {"id": str(m["_id"]), "channel": m["channel"], "to": m["to"], "kind": m["kind"], "subject": m["subject"],
             "text": m["text"], "status": m["status"], "has_link": "secret_link" in m,
             "created_at": iso(m["created_at"])}
            for m in page.items
        ]
        self.reply({"items": items, "next_cursor": page.next_cursor})


def routes(staff: StaffService, audit: AuditRepository, outbox: OutboxRepository) -> list:
    deps = {"staff": staff}
    uid = r"(?P<user_id>[A-Za-z0-9]{1,64})"
    return [
        (r"/admin/users", UsersHandler, deps),
        (rf"/admin/users/{uid}", UserHandler, deps),
        (rf"/admin/users/{uid}/suspend", SuspendHandler, deps),
        (rf"/admin/users/{uid}/unsuspend", UnsuspendHandler, deps),
        (rf"/admin/users/{uid}/roles", RolesHandler, deps),
        (rf"/admin/users/{uid}/notifications", NoticeHandler, deps),
        (r"/admin/staff", StaffAccountsHandler, deps),
        (r"/admin/audit", AuditHandler, {"audit": audit}),
        (r"/admin/outbox", OutboxHandler, {"outbox": outbox}),
    ]
