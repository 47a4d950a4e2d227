"""The limits set in the environment are the limits the served API enforces, every route alike (the
request schemas, the query parameters, the routes' own checks and the body limit all read the same
settings), lower or higher than their defaults; and nothing refused is stored."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from chatcore.config import get_settings

PROBLEM = "application/problem+json"


def problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == code
    return body


def invalid(r, *loc: str) -> dict:
    """A 422 ``invalid-input`` whose errors name the field at ``loc``; returns that error."""
    body = problem(r, 422, "invalid-input")
    named = [e for e in body["errors"] if e["loc"] == list(loc)]
    assert named, body
    return named[0]


@pytest.fixture()
def small_limits(settings_env):
    for name, value in {"MAX_MESSAGE_CHARS": "10", "MAX_TITLE_CHARS": "5", "MAX_IMAGES_PER_TURN": "1",
                        "MAX_CLIENT_TURN_ID_CHARS": "36", "MAX_PAGE_SIZE": "50", "MAX_USAGE_DAYS": "31",
                        "MAX_BODY_BYTES": "65536"}.items():
        settings_env.setenv(name, value)
    get_settings.cache_clear()
    return settings_env


def test_limits_set_lower_than_their_defaults_are_enforced_by_the_served_api(user, standin, db_conn, small_limits):
    sid = user.new_session()
    error = invalid(user.client.post(f"/sessions/{sid}/turns", json={"message": "x" * 11}), "body", "message")
    assert "at most 10 characters" in error["msg"]
    invalid(user.client.post(f"/sessions/{sid}/turns", json={"message": "hi", "client_turn_id": "a" * 37}),
            "body", "client_turn_id")
    invalid(user.client.post(f"/sessions/{sid}/turns", json={"message": "hi", "images": [
        {"upload_id": "0190b3f4-7c1e-7a2b-8c3d-4e5f60718293"}] * 2}), "body", "images")
    # nothing stored, the model never called
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id = %s", (sid,)).fetchone()["n"] == 0
    assert standin.requests() == []

    invalid(user.client.post("/sessions", json={"agent": "assistant", "title": "sixsix"}), "body", "title")
    invalid(user.client.patch(f"/sessions/{sid}", json={"title": "sixsix"}), "body", "title")
    assert user.client.patch(f"/sessions/{sid}", json={"title": "five5"}).status_code == 200

    error = invalid(user.client.get("/sessions", params={"limit": 51}), "query", "limit")
    assert "50" in error["msg"]
    invalid(user.client.get(f"/sessions/{sid}/messages", params={"limit": 51}), "query", "limit")
    assert user.client.get("/sessions", params={"limit": 50}).status_code == 200

    today = date.today()
    too_long = problem(user.client.get("/usage", params={"from": (today - timedelta(days=31)).isoformat(),
                                                         "to": today.isoformat()}), 422, "invalid-input")
    assert too_long["field"] == "to" and "31 days" in too_long["detail"]
    assert user.client.get("/usage", params={"from": (today - timedelta(days=30)).isoformat(),
                                             "to": today.isoformat()}).status_code == 200

    big = problem(user.client.post(f"/sessions/{sid}/turns", content=b"{" + b" " * 65536 + b"}",
                                   headers={"Content-Type": "application/json"}), 413, "payload-too-large")
    assert "larger than 65536 bytes" in big["detail"]

    _, events = user.turn(sid, message="x" * 10)  # at the limit: a turn
    assert events[-1]["event"] == "TurnCompleted"


def test_a_limit_set_higher_than_its_default_is_the_one_applied(user, standin, settings_env):
    settings_env.setenv("MAX_MESSAGE_CHARS", "40000")
    get_settings.cache_clear()
    sid = user.new_session()
    _, events = user.turn(sid, message="x" * 32_001)  # over the default (and the OpenAPI document's) 32,000
    assert events[-1]["event"] == "TurnCompleted"
    settings_env.setenv("MAX_MESSAGE_CHARS", "32000")
    get_settings.cache_clear()
    invalid(user.client.post(f"/sessions/{sid}/turns", json={"message": "x" * 32_001}), "body", "message")
