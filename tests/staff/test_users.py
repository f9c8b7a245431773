"""Roles, staff administration, suspension and the audit log."""

from __future__ import annotations

import pytest

from handlers.base import BaseHandler
from tests.helpers import assert_error, bearer, login, make_staff, outbox_link, signup

pytestmark = pytest.mark.asyncio


async def test_viewers_cannot_reach_admin_endpoints(server) -> None:
    viewer = await signup(server.client)
    for method, path in [("GET", "/api/v1/admin/users"), ("GET", f"/api/v1/admin/users/{viewer['user']['id']}"),
                         ("POST", "/api/v1/admin/staff"), ("GET", "/api/v1/admin/audit"),
                         ("GET", "/api/v1/admin/outbox")]:
        body = {} if method == "POST" else None
        resp = await server.client.request(method, path, headers=viewer["headers"], json=body)
        assert_error(resp, 403, "forbidden")
        assert_error(await server.client.request(method, path), 401, "not_authenticated")


async def test_support_agent_reads_users_but_cannot_change_them(server) -> None:
    agent = await make_staff(server, ["support_agent"])
    viewer = await signup(server.client)
    found = await server.client.get("/api/v1/admin/users", params={"q": viewer["email"][:8]}, headers=agent["headers"])
    assert found.status_code == 200
    assert [u["email"] for u in found.json()["items"]] == [viewer["email"]]
    resp = await server.client.post(f"/api/v1/admin/users/{viewer['user']['id']}/suspend", json={"reason": "x"},
                                    headers=agent["headers"])
    assert_error(resp, 403, "forbidden")


async def test_suspension_ends_sessions_and_is_audited(server) -> None:
    admin = await make_staff(server, ["admin"])
    viewer = await signup(server.client)
    uid = viewer["user"]["id"]
    resp = await server.client.post(f"/api/v1/admin/users/{uid}/suspend", json={"reason": "chargeback fraud"},
                                    headers=admin["headers"])
    assert resp.status_code == 200 and resp.json()["status"] == "suspended"
    assert_error(await server.client.get("/api/v1/me", headers=viewer["headers"]), 401, "session_revoked")
    assert_error(await server.client.post("/api/v1/auth/refresh", json={"refresh_token": viewer["refresh_token"]}),
                 401, "session_revoked")
    assert_error(await login(server.client, viewer["email"]), 403, "account_suspended")
    lifted = await server.client.post(f"/api/v1/admin/users/{uid}/unsuspend", json={"reason": "resolved"},
                                      headers=admin["headers"])
    assert lifted.json()["status"] == "active"
    assert (await login(server.client, viewer["email"])).status_code == 200
    audit = (await server.client.get("/api/v1/admin/audit", params={"target_id": uid},
                                     headers=admin["headers"])).json()["items"]
    assert [a["action"] for a in audit] == ["user.unsuspend", "user.suspend"]
    assert audit[1]["actor_id"] == admin["id"]
    assert audit[1]["details"]["reason"] == "chargeback fraud" and audit[1]["details"]["sessions_ended"] == 1


async def test_role_changes_respect_privilege(server) -> None:
    admin = await make_staff(server, ["admin"])
    root = await make_staff(server, ["super_admin"])
    viewer = await signup(server.client)
    uid = viewer["user"]["id"]
    ok = await server.client.put(f"/api/v1/admin/users/{uid}/roles", json={"roles": ["content_manager"]},
                                 headers=admin["headers"])
    assert ok.status_code == 200 and ok.json()["roles"] == ["content_manager", "viewer"]
    # The new role applies at the very next request, without a new token.
    assert (await server.client.get("/api/v1/admin/users", headers=viewer["headers"])).status_code == 403
    escalate = await server.client.put(f"/api/v1/admin/users/{uid}/roles", json={"roles": ["admin"]},
                                       headers=admin["headers"])
    assert_error(escalate, 403, "role_not_grantable")
    own = await server.client.put(f"/api/v1/admin/users/{admin['id']}/roles", json={"roles": ["super_admin"]},
                                  headers=admin["headers"])
    assert_error(own, 403, "role_not_grantable")
    by_root = await server.client.put(f"/api/v1/admin/users/{uid}/roles", json={"roles": ["admin"]},
                                      headers=root["headers"])
    assert by_root.status_code == 200 and "admin" in by_root.json()["roles"]
    assert (await server.client.get("/api/v1/admin/audit", headers=viewer["headers"])).status_code == 200
    bad = await server.client.put(f"/api/v1/admin/users/{uid}/roles", json={"roles": ["god"]},
                                  headers=root["headers"])
    assert_error(bad, 400, "validation_failed")


async def test_last_super_admin_cannot_step_down(server) -> None:
    root = await make_staff(server, ["super_admin"])
    resp = await server.client.put(f"/api/v1/admin/users/{root['id']}/roles", json={"roles": []},
                                   headers=root["headers"])
    assert_error(resp, 409, "last_super_admin")


async def test_admin_creates_staff_who_sets_a_password(server) -> None:
    admin = await make_staff(server, ["admin"])
    resp = await server.client.post("/api/v1/admin/staff", json={"email": "agent@example.com", "display_name": "Ag",
                                                                 "roles": ["support_agent"]}, headers=admin["headers"])
    assert resp.status_code == 201, resp.text
    assert resp.json()["roles"] == ["support_agent", "viewer"]
    outbox = (await server.client.get("/api/v1/admin/outbox", params={"to": "agent@example.com"},
                                      headers=admin["headers"])).json()["items"]
    kinds = {m["kind"] for m in outbox}
    assert {"reset_password", "verify_email"} <= kinds
    assert all("secret_link" not in m and "token=" not in m["text"] for m in outbox)  # staff never see secrets
    token = (await outbox_link(server, "agent@example.com", "reset_password")).split("token=")[1]
    done = await server.client.post("/api/v1/auth/password/reset", json={"token": token,
                                                                         "password": "agent passphrase 77"})
    assert done.status_code == 204
    agent = await login(server.client, "agent@example.com", "agent passphrase 77")
    assert agent.status_code == 200
    assert (await server.client.get("/api/v1/admin/users", headers=bearer(agent.json()["access_token"]))
            ).status_code == 200
    actions = [a["action"] for a in (await server.client.get("/api/v1/admin/audit", headers=admin["headers"])
                                     ).json()["items"]]
    assert "staff.create" in actions


async def test_user_ids_are_opaque_and_validated(server) -> None:
    admin = await make_staff(server, ["admin"])
    assert_error(await server.client.get("/api/v1/admin/users/000000000000000000000000", headers=admin["headers"]),
                 404, "account_not_found")
    # One id pattern for every route: what cannot be an id names no address at all.
    assert_error(await server.client.get("/api/v1/admin/users/notanid", headers=admin["headers"]), 404,
                 "route_not_found")


async def test_user_search_pages_with_cursor(server) -> None:
    admin = await make_staff(server, ["admin"])
    for i in range(5):
        await server.runtime.services.accounts.create_user(f"page{i}@example.com", f"P{i}", password=None)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"q": "page", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await server.client.get("/api/v1/admin/users", params=params, headers=admin["headers"])).json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [f"page{i}@example.com" for i in range(5)] and len(seen) == 5
    bad = await server.client.get("/api/v1/admin/users", params={"cursor": "!!!"}, headers=admin["headers"])
    assert_error(bad, 400, "invalid_cursor")
    too_many = await server.client.get("/api/v1/admin/users", params={"limit": 1000}, headers=admin["headers"])
    assert_error(too_many, 400, "validation_failed")


async def test_every_endpoint_declares_its_access(server) -> None:
    """A handler method without @endpoint would skip the one auth check: none may exist."""
    app_rules = server.runtime.app.wildcard_router.rules  # the live route table
    missing = []
    for rule in app_rules:
        handler = rule.target
        if not (isinstance(handler, type) and issubclass(handler, BaseHandler)):
            continue
        for method in ("get", "post", "put", "patch", "delete"):
            fn = getattr(handler, method)
            if fn is not getattr(BaseHandler, method) and not hasattr(fn, "__endpoint__"):
                missing.append(f"{handler.__name__}.{method}")
    assert missing == []


async def test_openapi_lists_the_identity_contract(server) -> None:
    doc = (await server.client.get("/api/v1/openapi.json")).json()
    paths = doc["paths"]
    for path, method in [
        ("/api/v1/auth/signup", "post"), ("/api/v1/auth/login", "post"), ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"), ("/api/v1/auth/social/{provider}", "post"),
        ("/api/v1/auth/password/forgot", "post"), ("/api/v1/auth/password/reset", "post"),
        ("/api/v1/auth/email/verify", "post"), ("/api/v1/me", "get"), ("/api/v1/me", "patch"),
        ("/api/v1/me/sessions", "get"), ("/api/v1/me/sessions/{session_id}", "delete"),
        ("/api/v1/me/links/{provider}", "post"), ("/api/v1/me/links/{provider}", "delete"),
        ("/api/v1/me/mfa/totp", "post"), ("/api/v1/me/mfa/totp/confirm", "post"), ("/api/v1/me/mfa/totp", "delete"),
        ("/api/v1/me/profiles", "get"), ("/api/v1/me/profiles", "post"), ("/api/v1/me/profiles/{profile_id}", "patch"),
        ("/api/v1/me/profiles/{profile_id}", "delete"), ("/api/v1/admin/users", "get"), ("/api/v1/admin/audit", "get"),
    ]:
        assert method in paths.get(path, {}), (path, method)
    login_op = paths["/api/v1/auth/login"]["post"]
    assert login_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/LoginBody")
    assert paths["/api/v1/me"]["get"]["security"] == [{"bearer": []}, {"session": []}]  # the app, or a staff page
