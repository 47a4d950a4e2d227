"""The OpenAPI document states the rules the API enforces, so a request the document calls valid is
not refused as invalid input, and one it calls invalid is refused: each request below is checked
against docs/openapi.json (JSON Schema 2020-12) and sent to the served API, and the two must agree.

Then the bounded fuzz run of ``bin/fuzz`` (schemathesis, every check) against the served API.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.support.images import SMALL_PNG, b64

ROOT = Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "docs" / "openapi.json").read_text())
PHOTO = {"data": b64(SMALL_PNG), "mime_type": "image/png"}


def valid_body(path: str, method: str, body: dict) -> bool:
    ref = DOC["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return Draft202012Validator({"$ref": ref, "components": DOC["components"]}).is_valid(body)


def valid_query(path: str, name: str, value: str) -> bool:
    [parameter] = [p for p in DOC["paths"][path]["get"]["parameters"] if p["name"] == name]
    return Draft202012Validator(parameter["schema"]).is_valid(value)


def refused_as_invalid(status: int) -> bool:
    return status in (400, 413, 422)


SESSION_BODIES = [
    ({"agent": "assistant"}, True),
    ({"team": "planner"}, True),
    ({"agent": "assistant", "team": None}, True),
    ({"agent": None, "team": "planner", "title": "trip"}, True),
    ({}, False),
    ({"title": "no agent nor team"}, False),
    ({"agent": None, "team": None}, False),
    ({"agent": "assistant", "team": "planner"}, False),
    ({"agent": "assistant", "title": "a\x00b"}, False),
]


@pytest.mark.parametrize(("body", "valid"), SESSION_BODIES, ids=[json.dumps(b) for b, _ in SESSION_BODIES])
def test_a_new_session_is_valid_for_the_document_exactly_when_the_api_takes_it(user, body, valid):
    assert valid_body("/sessions", "post", body) is valid
    r = user.client.post("/sessions", json=body)
    assert refused_as_invalid(r.status_code) is not valid, (r.status_code, r.text)


TURN_BODIES = [
    ({"message": "hi"}, True),
    ({"images": [PHOTO]}, True),
    ({"message": "  \n", "images": [PHOTO]}, True),  # a photo without a caption
    ({"images": [{"data": b64(SMALL_PNG)}]}, True),
    ({}, False),
    ({"message": ""}, False),
    ({"message": " \t\n"}, False),
    ({"message": "  ", "images": []}, False),
    ({"message": "a\x00b"}, False),
    ({"images": [{}]}, False),
    ({"images": [{"mime_type": "image/png"}]}, False),
    ({"images": [{**PHOTO, "upload_id": str(uuid.uuid4())}]}, False),
    ({"images": [{"upload_id": str(uuid.uuid4()), "mime_type": "image/png"}]}, False),
]


@pytest.mark.parametrize(("body", "valid"), TURN_BODIES, ids=[json.dumps(b)[:60] for b, _ in TURN_BODIES])
def test_a_turn_is_valid_for_the_document_exactly_when_the_api_takes_it(user, standin, body, valid):
    path = "/sessions/{session_id}/turns"
    assert valid_body(path, "post", body) is valid
    r, _ = user.turn(user.new_session(), **body)
    assert refused_as_invalid(r.status_code) is not valid, (r.status_code, r.text[:300])


@pytest.mark.parametrize(("title", "valid"), [("a title", True), ("a\x00title", False), ("", False)])
def test_a_title_is_valid_for_the_document_exactly_when_the_api_takes_it(user, title, valid):
    assert valid_body("/sessions/{session_id}", "patch", {"title": title}) is valid
    r = user.client.patch(f"/sessions/{user.new_session()}", json={"title": title})
    assert refused_as_invalid(r.status_code) is not valid, (r.status_code, r.text)


@pytest.mark.parametrize(("size", "status"), [(1, 201), (25 * 1024 * 1024, 201), (25 * 1024 * 1024 + 1, 413)])
def test_an_upload_s_size_is_at_most_the_documented_maximum(user, size, status):
    assert valid_body("/uploads", "post", {"mime_type": "image/png", "size": size}) is (status == 201)
    assert user.client.post("/uploads", json={"mime_type": "image/png", "size": size}).status_code == status


@pytest.mark.parametrize(("query", "valid"), [
    ({"from": "2026-01-01", "to": "2026-01-31"}, True),
    ({"to": "2026-02-28"}, True),
    ({"to": "0"}, False),             # a number is not read as a Unix time
    ({"to": "1700000000"}, False),
    ({"from": "20260101", "to": "2026-01-31"}, False),  # the basic ISO form
    ({"from": "2026-W01-1", "to": "2026-01-31"}, False),  # an ISO week date
    ({"to": "2026-02-30"}, None),     # the pattern's shape, but no such day: 422 all the same
])
def test_a_usage_day_is_yyyy_mm_dd_only(user, query, valid):
    if valid is not None:
        assert all(valid_query("/usage", name, value) for name, value in query.items()) is valid
    r = user.client.get("/usage", params=query)
    assert (r.status_code == 200) is bool(valid), (r.status_code, r.text)
    if r.status_code == 422:
        assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(("cursor", "valid"), [("WyJhIl0", True), ("not a cursor!", False), ("", False),
                                               ("WyJhIl0=", False)])
def test_a_cursor_is_unpadded_url_safe_base64(user, cursor, valid):
    assert valid_query("/sessions", "cursor", cursor) is valid
    r = user.client.get("/sessions", params={"cursor": cursor})
    assert r.status_code == 422  # a well-formed cursor the API did not issue is refused too
    problem = r.json()
    assert problem["code"] == "invalid-input" and (problem.get("field") == "cursor" or [
        e for e in problem["errors"] if e["loc"] == ["query", "cursor"]])


MEMORY_TEXTS = [("I live in Cape Town", True), ("two\nlines", True), ("x" * 500, True), ("", False),
                (" \n\t ", False), ("a\x00b", False), ("x" * 501, False)]


@pytest.mark.parametrize(("text", "valid"), MEMORY_TEXTS, ids=[repr(t[:12]) for t, _ in MEMORY_TEXTS])
def test_a_memory_s_text_is_valid_for_the_document_exactly_when_the_api_takes_it(user, standin, text, valid):
    user.turn(user.new_session(), message="Remember that I live in Durban")
    (memory,) = user.client.get("/me/memories").json()["items"]
    assert valid_body("/me/memories/{memory_id}", "patch", {"text": text}) is valid
    r = user.client.patch(f"/me/memories/{memory['id']}", json={"text": text})
    assert refused_as_invalid(r.status_code) is not valid, (r.status_code, r.text)


@pytest.mark.parametrize(("body", "valid"), [({"memory": False}, True), ({"memory": True}, True), ({}, False),
                                             ({"memory": "no"}, False), ({"memory": None}, False)])
def test_the_settings_are_valid_for_the_document_exactly_when_the_api_takes_them(user, body, valid):
    assert valid_body("/me/settings", "put", body) is valid
    r = user.client.put("/me/settings", json=body)
    assert refused_as_invalid(r.status_code) is not valid, (r.status_code, r.text)


def test_a_bounded_fuzz_run_of_the_served_api_passes_every_check(server_url, standin, tmp_path):
    """``bin/fuzz`` at a small size (about half a minute): every operation but DELETE /me, every
    phase and every check of schemathesis; any failure fails the test, with schemathesis' report."""
    from chatcore.web.identity import unsigned_jwt
    from local import fuzz

    log = tmp_path / "fuzz.log"
    with log.open("w") as output:
        status = fuzz.run(server_url, unsigned_jwt({"sub": f"fuzz-{uuid.uuid4()}"}), max_examples=5, seed=20,
                          output=output)
    report = log.read_text()
    assert status == 0, report[-6000:]
    assert "No issues found" in report and "29 selected / 30 total" in report, report[-3000:]
