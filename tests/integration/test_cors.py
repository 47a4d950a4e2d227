"""Browsers (CORS) against the served API: from an allowed Origin, every route's preflight is
answered without a token, and every answer (JSON, problems, a turn's stream, a resume, a 204) names
the origin and lets the page read X-Run-Id; another origin's preflight is refused; with no origin
configured (the default) nothing of CORS is sent."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from local.openapi import OPENAPI_PATH
from tests.support.users import User

APP = "https://app.example"
EXPOSED = {"x-run-id", "retry-after", "ratelimit", "ratelimit-policy"}


@pytest.fixture()
def cors(settings_env):
    settings_env.setenv("CORS_ALLOWED_ORIGINS", f"{APP}, http://localhost:5173")
    from chatcore.config import get_settings

    get_settings.cache_clear()


def assert_cors(r: httpx.Response, origin: str = APP) -> None:
    assert r.headers.get("access-control-allow-origin") == origin, (r.status_code, dict(r.headers))
    assert EXPOSED == {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert "origin" in r.headers["vary"].lower()
    assert "access-control-allow-credentials" not in r.headers  # a bearer token, never a cookie


def preflight(url: str, path: str, method: str, origin: str = APP) -> httpx.Response:
    return httpx.options(url + path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, last-event-id"})


def documented_routes() -> list[tuple[str, str]]:
    doc = json.loads(OPENAPI_PATH.read_text())
    return [(method.upper(), re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path))
            for path, item in doc["paths"].items() for method in item]


def test_every_routes_preflight_is_answered_from_an_allowed_origin_without_a_token(cors, server_url):
    routes = documented_routes()
    assert len(routes) >= 17
    for method, path in routes:
        r = preflight(server_url, path, method)
        assert r.status_code == 204, (method, path, r.text)
        assert r.headers["access-control-allow-origin"] == APP and "origin" in r.headers["vary"].lower()
        assert method in r.headers["access-control-allow-methods"]
        allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "last-event-id"} <= allowed
        assert int(r.headers["access-control-max-age"]) > 0
        assert "access-control-allow-credentials" not in r.headers
    assert preflight(server_url, "/sessions", "GET", "http://localhost:5173").status_code == 204  # the other one


def test_a_turn_its_resume_and_its_problems_are_readable_from_an_allowed_origin(cors, settings_env, server_url,
                                                                               standin):
    settings_env.setenv("MAX_BODY_BYTES", str(64 * 1024))
    from chatcore.config import get_settings

    get_settings.cache_clear()
    user = User(server_url)
    browser = httpx.Client(base_url=server_url, headers={**user.headers, "Origin": APP}, timeout=60)
    created = browser.post("/sessions", json={"agent": "assistant"})
    assert created.status_code == 201
    assert_cors(created)
    sid = created.json()["id"]
    with browser.stream("POST", f"/sessions/{sid}/turns", json={"message": "hello"}) as turn:
        assert turn.status_code == 200 and turn.headers["content-type"].startswith("text/event-stream")
        assert_cors(turn)
        run_id = turn.headers["x-run-id"]  # what Access-Control-Expose-Headers lets a page read
        text = turn.read().decode()
    final_id = re.findall(r"^id: (\d+)$", text, re.M)[-1]
    resumed = browser.get(f"/sessions/{sid}/turns/{run_id}/events", headers={"Last-Event-ID": "1"})
    assert resumed.status_code == 200 and "TurnCompleted" in resumed.text
    assert_cors(resumed)
    ended = browser.get(f"/sessions/{sid}/turns/{run_id}/events", headers={"Last-Event-ID": final_id})
    assert ended.status_code == 204
    assert_cors(ended)
    # problems, whoever answers them: identity, the router, validation, the body limit
    for r, status in ((httpx.get(f"{server_url}/sessions", headers={"Origin": APP}), 401),
                      (browser.get(f"/sessions/{uuid.uuid4()}"), 404),
                      (browser.get("/sessions", params={"limit": 0}), 422),
                      (browser.put("/sessions"), 405),
                      (browser.post("/sessions", content=b"x" * (65 * 1024)), 413)):
        assert r.status_code == status and r.headers["content-type"].startswith("application/problem+json"), r.text
        assert_cors(r)


def test_another_origins_preflight_is_refused_and_its_answers_name_no_origin(cors, server_url):
    r = preflight(server_url, "/sessions", "POST", "https://evil.example")
    assert r.status_code == 403 and r.json()["code"] == "origin-not-allowed"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "access-control-allow-origin" not in r.headers
    user = User(server_url)
    plain = user.client.get("/sessions", headers={"Origin": "https://evil.example"})
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
    assert "origin" in plain.headers["vary"].lower()  # a cache keeps each origin's answer apart


def test_any_origin_with_a_star_and_still_no_credentials(settings_env, server_url):
    settings_env.setenv("CORS_ALLOWED_ORIGINS", "*")
    from chatcore.config import get_settings

    get_settings.cache_clear()
    r = preflight(server_url, "/usage", "GET", "https://anyone.example")
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "https://anyone.example"
    answer = User(server_url).client.get("/agents", headers={"Origin": "https://anyone.example"})
    assert_cors(answer, "https://anyone.example")


def test_no_origin_configured_sends_nothing_of_cors(settings_env, server_url):
    settings_env.delenv("CORS_ALLOWED_ORIGINS", raising=False)
    from chatcore.config import get_settings

    get_settings.cache_clear()
    r = preflight(server_url, "/sessions", "POST")
    assert r.status_code == 405 and r.headers["content-type"].startswith("application/problem+json")
    answer = User(server_url).client.get("/agents", headers={"Origin": APP})
    assert answer.status_code == 200
    assert not [h for h in answer.headers if h.startswith("access-control-")] and "vary" not in answer.headers
