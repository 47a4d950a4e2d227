"""Who is calling, through the served API: the gateway's request context identifies the caller, and the
server refuses unsigned JWTs when they are not allowed (the header parsing: tests/unit/test_identity.py)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from chatcore.config import get_settings
from tests.support.gateway import http_api_context, rest_context


def _user_row(db_conn, sub):
    return db_conn.execute("SELECT id FROM users WHERE sub = %s", (sub,)).fetchone()


@pytest.mark.parametrize("make_context", [rest_context, http_api_context], ids=["rest-api", "http-api"])
def test_request_context_header_identifies_the_caller_over_http(server_url, db_conn, standin, make_context):
    sub = f"cognito-{uuid.uuid4()}"
    headers = {"x-amzn-request-context": make_context(sub)}
    assert _user_row(db_conn, sub) is None
    r = httpx.post(f"{server_url}/sessions", json={"agent": "assistant"}, headers=headers)
    assert r.status_code == 201, r.text
    user = _user_row(db_conn, sub)
    assert user is not None
    sid = r.json()["id"]
    assert db_conn.execute("SELECT user_id FROM sessions WHERE id = %s", (sid,)).fetchone()["user_id"] == user["id"]
    # the same caller continues the session; a different sub cannot
    with httpx.Client(base_url=server_url, headers=headers, timeout=60) as client:
        r = client.post(f"/sessions/{sid}/turns", json={"message": "What is 2 + 2?"})
    assert r.status_code == 200 and "TurnCompleted" in r.text
    other = httpx.post(f"{server_url}/sessions/{sid}/turns", json={"message": "hi"},
                       headers={"x-amzn-request-context": make_context(f"cognito-{uuid.uuid4()}")})
    assert other.status_code == 404 and other.json()["code"] == "not-found"


def test_unsigned_jwt_is_refused_by_the_server_when_not_allowed(server_url, user, db_conn, settings_env):
    sid = user.new_session()  # allowed: the test stack sets ALLOW_UNSIGNED_JWT=1
    settings_env.setenv("ALLOW_UNSIGNED_JWT", "0")
    get_settings.cache_clear()
    for r in (user.client.post("/sessions", json={"agent": "assistant"}),
              user.client.post(f"/sessions/{sid}/turns", json={"message": "hi"})):
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "unauthorized"
    assert db_conn.execute("SELECT count(*) AS n FROM sessions s JOIN users u ON u.id = s.user_id "
                           "WHERE u.sub = %s", (user.sub,)).fetchone()["n"] == 1
    # the gateway's request context still works with unsigned JWTs off
    r = httpx.post(f"{server_url}/sessions", json={"agent": "assistant"},
                   headers={"x-amzn-request-context": rest_context(user.sub)})
    assert r.status_code == 201, r.text


def test_settings_are_restored_after_the_env_tests(stack):
    # the test above edited the environment; its fixture restored it: the stack's own settings are back
    get_settings.cache_clear()
    s = get_settings()
    assert s.database_url == stack.env["DATABASE_URL"] and s.allow_unsigned_jwt is True
