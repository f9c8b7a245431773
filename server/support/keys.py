"""The public-key directory of the support chat (docs/support-chat-crypto.md): device
public keys, the team's public keys, and the team private key sealed to agent devices.
The server checks shapes and who may publish what; it can open none of it."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from server.core import errors
from server.core.clock import now, to_ms
from server.core.permissions import Principal, Role
from server.staff.audit import AuditLog
from storage.identity.users import UserRepository
from storage.support.keys import KeyRepository

PUBLIC_KEY_BYTES = 32
SEALED_KEY_BYTES = 32 + 48  # a 32-byte key in a sealed box: ephemeral public key + MAC


def decode(value: str, field: str, size: int | None = None, max_size: int | None = None) -> bytes:
    """Standard base64 of the expected length, or a 400 naming the field."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise errors.ValidationFailed(details={"fields": {field: "base64"}}) from None
    if (size is not None and len(raw) != size) or (max_size is not None and len(raw) > max_size):
        expected = f"{size} bytes" if size is not None else f"at most {max_size} bytes"
        raise errors.ValidationFailed(details={"fields": {field: expected}})
    return raw


def device_key_id(user_id: str, device_id: str) -> str:
    return f"u:{user_id}:{device_id}"


class KeyDirectory:
    def __init__(self, keys: KeyRepository, users: UserRepository, audit: AuditLog) -> None:
        self._keys = keys
        self._users = users
        self._audit = audit

    async def put_device(self, user_id: str, device_id: str, public_key: str) -> dict[str, Any]:
        decode(public_key, "public_key", PUBLIC_KEY_BYTES)
        doc = {"_id": device_key_id(user_id, device_id), "user_id": user_id, "device_id": device_id,
               "public_key": public_key, "created_ms": to_ms(now())}
        await self._keys.put_device(doc)
        return device_view(doc)

    async def forget_device(self, actor: Principal, device_id: str) -> None:
        """A device leaves the chat (a browser signed out for good, a lost phone): its public
        key goes, and so do the team keys sealed to it, so nothing new is sealed to it."""
        key_id = device_key_id(actor.user_id, device_id)
        if not await self._keys.drop_device(key_id):
            raise errors.NotFound("No such device key.", code="device_key_not_found")
        await self._audit.record(actor, "support.device_key.forgotten", target_type="user", target_id=actor.user_id,
                                 details={"device_key_id": key_id})

    async def devices(self, user_id: str) -> list[dict[str, Any]]:
        return [device_view(d) for d in await self._keys.devices(user_id)]

    async def team_key(self) -> dict[str, Any]:
        key = await self._keys.active_team_key()
        if key is None:
            raise errors.ServiceUnavailable("Support chat has no team key yet: a supervisor must create one "
                                            "(POST /api/v1/admin/support/team-keys).", code="support_not_configured")
        return team_view(key)

    async def add_team_key(self, actor: Principal, public_key: str) -> dict[str, Any]:
        """A new active team key; older ones stay readable through their grants."""
        decode(public_key, "public_key", PUBLIC_KEY_BYTES)
        number = await self._keys.next_team_number()
        doc = {"_id": f"team:{number}", "number": number, "public_key": public_key, "active": True,
               "created_ms": to_ms(now()), "created_by": actor.user_id}
        await self._keys.add_team_key(doc)
        await self._audit.record(actor, "support.team_key.created", target_type="team_key", target_id=doc["_id"])
        return team_view(doc)

    async def grant(self, actor: Principal, team_key_id: str, device_key: str, sealed: str) -> None:
        """The team private key sealed to one agent device (or the supervisor's own)."""
        decode(sealed, "sealed_private_key", SEALED_KEY_BYTES)
        if await self._keys.team_key(team_key_id) is None:
            raise errors.NotFound("No such team key.", code="team_key_not_found")
        device = await self._keys.device(device_key)
        if device is None:
            raise errors.NotFound("No such device key.", code="device_key_not_found")
        holder = await self._users.get(device["user_id"])
        roles = set((holder or {}).get("roles", []))
        if device["user_id"] != actor.user_id and not roles & {"support_agent", "super_admin"}:
            raise errors.Unprocessable("Only support agents receive the team key.", code="not_an_agent")
        await self._keys.put_grant({"_id": f"{team_key_id}|{device_key}", "team_key_id": team_key_id,
                                    "device_key_id": device_key, "agent_id": device["user_id"],
                                    "sealed_private_key": sealed, "created_ms": to_ms(now())})
        await self._audit.record(actor, "support.team_key.granted", target_type="user", target_id=device["user_id"],
                                 details={"team_key_id": team_key_id, "device_key_id": device_key})

    async def team_keys(self) -> list[dict[str, Any]]:
        """Newest first; the console of a supervisor asks to know whether one exists yet."""
        return [team_view(k) for k in await self._keys.team_keys()]

    async def holders(self) -> list[dict[str, Any]]:
        """Everyone who may receive the team key (support agents, super admins; the first
        100 of each), with their device keys and which team keys are sealed to each: the
        supervisor's console shows who still waits for a grant."""
        people: dict[str, dict[str, Any]] = {}
        for role in (Role.SUPPORT_AGENT, Role.SUPER_ADMIN):
            for user in (await self._users.search(None, role, 100, None)).items:
                if user.get("status", "active") != "suspended":
                    people.setdefault(user["_id"], user)
        devices = await self._keys.devices_of(list(people))
        granted: dict[str, list[str]] = {}
        for grant in await self._keys.granted(list(people)):
            granted.setdefault(grant["device_key_id"], []).append(grant["team_key_id"])
        by_user: dict[str, list[dict[str, Any]]] = {}
        for device in devices:
            by_user.setdefault(device["user_id"], []).append(
                {**device_view(device), "team_key_ids": sorted(granted.get(device["_id"], []))})
        return [{"user_id": user_id, "display_name": user.get("display_name") or "", "email": user.get("email") or "",
                 "devices": by_user.get(user_id, [])} for user_id, user in people.items()]

    async def grants(self, agent_id: str) -> list[dict[str, Any]]:
        return [{k: g[k] for k in ("team_key_id", "device_key_id", "sealed_private_key")}
                for g in await self._keys.grants_for(agent_id)]


def device_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"key_id": doc["_id"], "device_id": doc["device_id"], "public_key": doc["public_key"]}


def team_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"key_id": doc["_id"], "public_key": doc["public_key"], "active": bool(doc["active"])}
