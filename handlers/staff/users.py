"""Staff administration of users and staff accounts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import EmailStr, Field, StringConstraints

from handlers.base import endpoint
from handlers.models import Account
from handlers.routing import ApiHandler
from handlers.staff.models import Accounts, NoticeSent
from server.core.fields import Body, PageQuery, Search, Text
from server.core.ids import ID_PATTERN
from server.staff.users import StaffService

TAGS = ("admin",)
RoleName = Literal["viewer", "support_agent", "content_manager", "admin", "super_admin"]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class UserQuery(PageQuery):
    q: Search | None = None
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


class StaffHandler(ApiHandler):
    def initialize(self, staff: StaffService) -> None:
        self.staff = staff


class UsersHandler(StaffHandler):
    @endpoint("Search users by email prefix and role", query=UserQuery, response=Accounts, permission="users.read",
              tags=TAGS)
    async def get(self) -> None:
        query = self.parse_query(UserQuery)
        self.reply(await self.staff.search(query.q, query.role, query.limit, query.cursor))


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
              response=NoticeSent, status=201, permission="users.notify", tags=TAGS, errors=(404,))
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


def routes(staff: StaffService) -> list:
    deps = {"staff": staff}
    uid = rf"(?P<user_id>{ID_PATTERN})"
    return [
        (r"/admin/users", UsersHandler, deps),
        (rf"/admin/users/{uid}", UserHandler, deps),
        (rf"/admin/users/{uid}/suspend", SuspendHandler, deps),
        (rf"/admin/users/{uid}/unsuspend", UnsuspendHandler, deps),
        (rf"/admin/users/{uid}/roles", RolesHandler, deps),
        (rf"/admin/users/{uid}/notifications", NoticeHandler, deps),
        (r"/admin/staff", StaffAccountsHandler, deps),
    ]
