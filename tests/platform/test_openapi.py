"""The OpenAPI document: a valid OpenAPI 3.1 document (openapi-spec-validator) that gives
every operation its request, responses, errors, headers and security; and what the real
app answers conforms to it (schemathesis: status codes, content types, headers and body
schemas), for a viewer and for staff, over real data."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections import Counter
from typing import Any

import httpx
import hypothesis
import requests
import schemathesis
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.catalog.helpers import category, create_title, series
from tests.helpers import PASSWORD, make_staff, signup
from tests.media.helpers import create_movie, upload, wait_job

API = "/api/v1"
# A 500 is undocumented, so status_code_conformance fails it; a 503 is documented (social
# sign-in and phone verification are not configured here), so no blanket 5xx check.
CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance, response_schema_conformance]
EXAMPLES = 3  # per operation and caller: bounded (about a minute), and derandomized
ERROR_REF = {"$ref": "#/components/schemas/Error"}

# The chunk body is raw bytes whatever the media type says.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


def _operations(doc: dict[str, Any]):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


async def test_the_document_is_valid_openapi_and_describes_every_operation(server) -> None:
    resp = await server.client.get(f"{API}/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    validate(doc)  # OpenAPI 3.1, every $ref resolvable, operation ids unique
    schemas = doc["components"]["schemas"]
    problems = []
    refusing = set()
    count = 0
    for path, method, op in _operations(doc):
        count += 1
        where = f"{method.upper()} {path}"
        ok = {s: r for s, r in op["responses"].items() if s[0] in "23"}
        if not ok:
            refusing.add(where)
        for status, response in ok.items():
            content = response.get("content", {})
            if method == "head" or status in ("204", "302", "304"):
                if content:
                    problems.append(f"{where} {status}: a body where there is none")
                continue
            if not content:
                problems.append(f"{where} {status}: no content")
            json_schema = content.get("application/json", {}).get("schema")
            if json_schema is not None and json_schema.get("$ref", "").removeprefix(
                    "#/components/schemas/") not in schemas:
                problems.append(f"{where} {status}: the JSON reply has no schema")
        for status, response in op["responses"].items():
            if "X-Request-ID" not in response.get("headers", {}):
                problems.append(f"{where} {status}: X-Request-ID not documented")
            if where == "GET /readyz" and status == "503":  # not ready: the readiness report, naming what is down
                assert response["content"]["application/json"]["schema"]["$ref"].endswith("/Readiness")
            elif status[0] in "45" and method != "head" and response["content"].get("application/json", {}).get(
                    "schema") != ERROR_REF:
                problems.append(f"{where} {status}: not the Error schema")
            if status == "429" and "Retry-After" not in response["headers"]:
                problems.append(f"{where} 429: Retry-After not documented")
        if "security" not in op:
            problems.append(f"{where}: no security")
    assert problems == []
    assert count >= 99
    assert refusing == {"GET /media/{rest}"}  # declared to always refuse

    me = doc["paths"][f"{API}/me"]["get"]
    assert me["security"] == [{"bearer": []}, {"session": []}]
    assert doc["paths"][f"{API}/me"]["patch"]["security"] == [
        {"bearer": []}, {"session": [], "xsrfCookie": [], "xsrfHeader": []}]
    assert me["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Account"}
    assert set(me["responses"]) == {"200", "401", "429", "503"}
    assert schemas["Account"]["additionalProperties"] is False  # a reply that grows a field fails conformance
    assert set(schemas["Error"]["properties"]) == {"error"}
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message", "details"}

    chunk = doc["paths"][f"{API}/admin/uploads/{{upload_id}}"]["put"]
    assert set(chunk["requestBody"]["content"]) == {"application/offset+octet-stream", "application/octet-stream"}
    offset = next(p for p in chunk["parameters"] if p["name"] == "Upload-Offset")
    assert offset["in"] == "header" and offset["required"] and offset["schema"]["type"] == "integer"
    assert chunk["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Upload")
    assert doc["paths"][f"{API}/me/watchlist/{{title_id}}"]["put"]["responses"]["204"].get("content") is None
    browse = {p["name"]: p for p in doc["paths"][f"{API}/titles"]["get"]["parameters"]}
    assert browse["sort"]["schema"]["enum"] == ["popular", "new", "rating", "trending"]
    assert browse["type"]["schema"]["enum"] == ["movie", "series"]
    login = doc["paths"]["/login"]["post"]
    assert set(login["requestBody"]["content"]) == {"application/x-www-form-urlencoded"}
    assert "Location" in login["responses"]["302"]["headers"]


async def _seed(served, clip) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    """A super admin, a viewer and real content, made through the API as clients would:
    ids for the path parameters, so the fuzzing reaches success replies, not only 404s."""
    staff = await make_staff(served, ["super_admin"])
    viewer = await signup(served.client)
    h, vh, client = staff["headers"], viewer["headers"], served.client
    genre = await category(served, staff, "drama")
    movie = await create_movie(served, staff)
    up = await upload(served, staff, movie, clip.read_bytes())
    done = await client.post(f"{API}/admin/uploads/{up['id']}/complete", headers=h)
    assert done.status_code == 202, done.text
    job = await wait_job(served, staff, done.json()["job_id"])
    assert job["status"] == "done", job
    show, episodes = await series(served, staff, seasons=1, episodes=2, maturity_rating="all")
    draft = await create_title(served, staff)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    announced = await create_title(served, staff, publish_at=soon.isoformat())
    plans = [p["id"] for p in (await client.get(f"{API}/plans")).json()["items"]]
    granted = await client.post(f"{API}/admin/users/{viewer['user']['id']}/complimentary", headers=h,
                                json={"plan_id": plans[-1], "days": 1})
    assert granted.status_code == 200, granted.text
    play = (await client.post(f"{API}/playback/{movie}/start", json={}, headers=vh)).json()
    beat = await client.post(f"{API}/playback/sessions/{play['session_id']}/heartbeat", headers=vh,
                             json={"position": 2, "state": "playing"})
    assert beat.status_code == 200, beat.text
    for listed in (movie, announced["id"]):  # an announced title is listed with its publish_at
        assert (await client.put(f"{API}/me/watchlist/{listed}", headers=vh)).status_code == 204
    review = await client.post(f"{API}/titles/{movie}/reviews", headers=vh, json={"rating": 4, "text": "Good"})
    assert review.status_code == 201, review.text
    notice = await client.post(f"{API}/admin/users/{viewer['user']['id']}/notifications", headers=h,
                               json={"title": "Hello", "body": "Welcome"})
    assert notice.status_code == 201, notice.text
    for caller in (staff, viewer):
        caller["profile_id"] = (await client.get(f"{API}/me/profiles", headers=caller["headers"])).json()[
            "items"][0]["id"]
    form = {"email": staff["email"], "password": PASSWORD, "_xsrf": (await client.get("/login")).cookies["_xsrf"]}
    signed_in = await client.post("/login", data=form)  # the staff pages' own sign-in, by form
    assert signed_in.status_code == 302, signed_in.text
    signed_out = await client.post("/logout", data={"_xsrf": form["_xsrf"]})
    assert signed_out.status_code == 302, signed_out.text
    client.cookies.clear()
    token, key = re.fullmatch(r".*/media/([^/]+)/(.+)", play["manifest_url"]).groups()
    ids = {
        "title_id": [movie, show["id"], draft["id"]], "content_id": [movie, episodes[0]["id"]],
        "episode_id": [e["id"] for e in episodes], "review_id": [review.json()["id"]],
        "category_id": [genre["id"]], "user_id": [viewer["user"]["id"]], "upload_id": [up["id"]],
        "job_id": [job["id"]], "plan_id": plans, "number": ["1"], "session_id": [play["session_id"]],
        "token": [token], "key": [key, key.replace("master.m3u8", "240p/index.m3u8")],
    }
    return staff, viewer, ids


def _strategy(op, ids: dict[str, list[str]]):
    """Generated cases, and as many again with real ids in the path and the query."""
    generated = op.as_strategy()
    path = [p.name for p in op.path_parameters]
    query = [p.name for p in op.query if p.name in ids]
    if not all(n in ids for n in path) or not path + query:
        return generated
    real = st.tuples(st.fixed_dictionaries({n: st.sampled_from(ids[n]) for n in path}),
                     st.fixed_dictionaries({n: st.sampled_from(ids[n]) for n in query}))
    return st.one_of(real.flatmap(lambda values: op.as_strategy(path_parameters=values[0], query=values[1] or None)),
                     generated)


def _order(op) -> tuple[int, str]:
    """Reads first, deletions last: what a caller deletes is still there for the rest."""
    return ({"GET": 0, "HEAD": 0, "DELETE": 2}.get(op.method.upper(), 1), op.label)


def fuzz(doc: dict[str, Any], base_url: str, caller: dict[str, Any], ids: dict[str, list[str]],
         seen: Counter) -> list[str]:
    """Every operation, a few derandomized examples each, as `caller`; the failures of the
    checks, by operation. `seen` counts (operation, status) pairs."""
    schema = schemathesis.openapi.from_dict(doc)
    operations = sorted((r.ok() for r in schema.get_all_operations()), key=_order)
    session = requests.Session()
    failures: list[str] = []
    for op in operations:
        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                             phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=_strategy(op, ids | {"profile_id": [caller["profile_id"]]}))
        def run(case) -> None:
            resp = case.call_and_validate(base_url=base_url, session=session, headers=caller["headers"],
                                          checks=CHECKS)
            seen[case.operation.label, resp.status_code] += 1

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # checks failed (a group): name the operation, go on
            failures.append(f"{op.label}: {exc}")
    session.close()
    return failures


def conformance(schema, responses: list[httpx.Response], seen: Counter) -> list[str]:
    """The same checks for responses the app gave to the set-up's own requests: the
    successes a fuzzer rarely reaches (sign-up, an upload, playback)."""
    failures = []
    for resp in responses:
        label = f"{resp.request.method} {resp.request.url.path}"
        op = schema.find_operation_by_path(resp.request.method, resp.request.url.path)
        if op is None:
            failures.append(f"{label}: not in the document")
            continue
        seen[op.label, resp.status_code] += 1
        if op.responses.find_by_status_code(resp.status_code) is None:
            failures.append(f"{label}: undocumented status {resp.status_code}")
            continue
        try:
            op.validate_response(resp)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{label}: {exc}")
    return failures


async def test_what_the_app_answers_conforms_to_the_document(start_server, clip) -> None:
    served = await start_server(NAMELESS_RATE_LIMIT_IP="1000000", NAMELESS_RATE_LIMIT_USER="1000000",
                                NAMELESS_RATE_LIMIT_AUTH="1000000")
    answered: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        answered.append(response)

    served.client.event_hooks["response"].append(keep)
    staff, viewer, ids = await _seed(served, clip)
    served.client.event_hooks["response"].remove(keep)
    doc = (await served.client.get(f"{API}/openapi.json")).json()
    seen: Counter = Counter()
    failures = conformance(schemathesis.openapi.from_dict(doc), answered, seen)
    for caller in (viewer, staff):  # the viewer first: staff may suspend them
        failures += await asyncio.to_thread(fuzz, doc, served.url, caller, ids, seen)
    assert failures == [], "\n\n".join(failures)
    operations = {label for label, _ in seen}
    succeeded = {label for label, status in seen if status < 400}
    assert len(operations) == sum(1 for _ in _operations(doc))  # every operation was called
    # and most reached a success, so their reply schemas were checked (the rest need a secret
    # a test cannot forge: a reset link, a provider's ID token, a TOTP code)
    assert len(succeeded) >= 70, sorted(operations - succeeded)
