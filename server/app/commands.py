"""Admin commands that `run.py` runs against a started runtime (no HTTP served)."""

from __future__ import annotations

from server.app.wiring import Services
from server.core import errors
from server.core.clock import now
from server.identity.accounts import normalize_email
from server.platform import Platform
from storage.identity.users import UserRepository


async def set_password(services: Services, platform: Platform, email: str, password: str) -> None:
    """What a password reset link does, for someone at the server's console: the same
    password policy, and every session of the account ends (its sockets are disconnected)."""
    user = await UserRepository(platform.db).by_email(normalize_email(email))
    if user is None:
        raise errors.NotFound(f"No account has the email {email}.", code="user_not_found")
    token = await services.accounts.issue_reset_token(str(user["_id"]), now())
    if token is None:
        raise errors.Conflict(f"The account {email} is not active.", code="account_inactive")
    await services.accounts.reset_password(token, password)
    await services.audit.record(None, "user.set_password", target_type="user", target_id=str(user["_id"]),
                                ip="cli")
