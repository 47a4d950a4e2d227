"""A browser's resume of a turn's stream (an EventSource: no Authorization header) with a resume
token in the query, against the served API: a cut stream resumed to its final event, then the
EventSource's reconnect stopped by a 204; every refused token a 401 problem that says nothing of the
turn; the token stored only as its hash, and never in a log line. And the events route with a
bearer token its function checks against the user pool itself, as in AWS (COGNITO_ISSUER)."""

from __future__ import annotations

import logging

import httpx
import pytest

from chatcore.wire import sse
from tests.support.streams import read_events
from tests.support.user_pool import UserPool
from tests.support.users import User


def resume_token(user: User, sid: str, run_id: str) -> str:
    r = user.client.post(f"/sessions/{sid}/turns/{run_id}/resume-token")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["expires_in"] == 300 and set(body) == {"token", "expires_in", "expires_at"}
    return body["token"]


def unauthorized(r: httpx.Response, token: str) -> None:
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert r.json()["code"] == "unauthorized" and token not in r.text


def test_a_browser_resumes_a_cut_stream_with_a_resume_token_to_its_final_event(user, standin, server_url, db_conn,
                                                                                 caplog):
    caplog.set_level(logging.DEBUG)
    standin.script([{"text": " ".join(f"word{i}" for i in range(40)), "delay_ms": 30}])
    sid = user.new_session()
    with user.client.stream("POST", f"/sessions/{sid}/turns", json={"message": "talk"}) as r:
        run_id = r.headers["x-run-id"]
        before = read_events(r, stop_after=lambda ev: len(ev) == 3)  # the connection drops here
    token = resume_token(user, sid, run_id)
    events_url = f"{server_url}/sessions/{sid}/turns/{run_id}/events"
    # what a new EventSource sends: no Authorization, the token and where to resume in the query
    resumed = httpx.get(events_url, params={"token": token, "after": before[-1]["id"]},
                        headers={"Accept": "text/event-stream"}, timeout=60)
    assert resumed.status_code == 200 and resumed.headers["x-run-id"] == run_id
    after = sse.parse(resumed.text)
    ids = [int(e["id"]) for e in before + after]
    assert ids == list(range(1, len(ids) + 1)) and after[-1]["event"] == "TurnCompleted"
    # the EventSource reconnects on its own with the same URL and Last-Event-ID: a 204 stops it
    again = httpx.get(events_url, params={"token": token, "after": before[-1]["id"]},
                      headers={"Last-Event-ID": after[-1]["id"]})
    assert again.status_code == 204
    # the token is stored as its hash only, and no log line of the server (in this process) holds it
    rows = db_conn.execute("SELECT token_hash, run_id FROM resume_tokens WHERE run_id = %s", (run_id,)).fetchall()
    assert len(rows) == 1 and token.encode() not in bytes(rows[0]["token_hash"])
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not the test's client
    assert server_side and not [r for r in server_side if token in r.getMessage()]


def test_refused_resume_tokens_are_401_problems_and_a_token_opens_nothing_else(user, standin, server_url, db_conn):
    sid = user.new_session()
    first = user.turn(sid, message="one")[0].headers["x-run-id"]
    second = user.turn(sid, message="two")[0].headers["x-run-id"]
    stranger = User(server_url)
    their_sid = stranger.new_session()
    theirs = stranger.turn(their_sid, message="three")[0].headers["x-run-id"]
    token = resume_token(user, sid, first)
    anonymous = httpx.Client(base_url=server_url, timeout=30)

    def events(session: str, run: str, value: str) -> httpx.Response:
        return anonymous.get(f"/sessions/{session}/turns/{run}/events", params={"token": value})

    assert events(sid, first, token).status_code == 200
    unauthorized(events(sid, second, token), token)  # another turn of the same user
    unauthorized(events(their_sid, theirs, token), token)  # another user's turn
    unauthorized(events(their_sid, first, token), token)  # the turn under another session
    unauthorized(events(sid, first, token[:-1] + ("A" if token[-1] != "A" else "B")), token)  # tampered
    unauthorized(events(sid, first, ""), token)
    unauthorized(events(sid, first, "x" * 500), token)
    # no one gets a token for someone else's turn, and a token is no identity on any other route
    r = stranger.client.post(f"/sessions/{sid}/turns/{first}/resume-token")
    assert r.status_code == 404 and r.json()["code"] == "not-found"
    unauthorized(anonymous.get("/sessions", params={"token": token}), token)
    unauthorized(anonymous.post(f"/sessions/{sid}/turns/{first}/cancel", params={"token": token}), token)
    # expired
    db_conn.execute("UPDATE resume_tokens SET expires_at = now() - interval '1 second' WHERE run_id = %s", (first,))
    unauthorized(events(sid, first, token), token)
    # pruned by the scheduled run once expired
    from chatcore.store import resume_tokens

    assert resume_tokens.prune(db_conn) >= 1
    assert db_conn.execute("SELECT count(*) AS n FROM resume_tokens WHERE run_id = %s", (first,)).fetchone()["n"] == 0


def test_a_deleted_account_s_tokens_open_nothing_at_once(user, standin, server_url):
    sid = user.new_session()
    run_id = user.turn(sid, message="hello")[0].headers["x-run-id"]
    token = resume_token(user, sid, run_id)
    url = f"{server_url}/sessions/{sid}/turns/{run_id}/events"
    assert httpx.get(url, params={"token": token}).status_code == 200
    assert user.client.delete("/me").status_code in (200, 202)
    unauthorized(httpx.get(url, params={"token": token}), token)


def test_the_access_log_prints_a_resume_token_redacted():
    from chatcore.web.resume import RedactTokens

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/sessions/s/turns/r/events?after=3&token=SECRET-value_1",
                                "1.1", 200), None)
    assert RedactTokens().filter(record) and "SECRET" not in record.getMessage()
    assert record.getMessage().endswith('events?after=3&token=[redacted] HTTP/1.1" 200')
    assert any(isinstance(f, RedactTokens) for f in logging.getLogger("uvicorn.access").filters)


@pytest.fixture()
def pool(settings_env):
    from chatcore.config import get_settings
    from chatcore.web import cognito

    cognito._keys.cache_clear()
    with UserPool() as pool:
        settings_env.setenv("COGNITO_ISSUER", pool.issuer)
        get_settings.cache_clear()
        yield pool
    cognito._keys.cache_clear()


def test_without_an_authorizer_the_function_checks_the_bearer_token_itself(pool, server_url, standin):
    """As the events function in AWS: no authorizer's claims, COGNITO_ISSUER set. A token of the pool
    reads the user's turn; an unsigned one (accepted locally otherwise) or an expired one is a 401."""
    signed = {"Authorization": f"Bearer {pool.token('pool-user-1')}"}
    with httpx.Client(base_url=server_url, headers=signed, timeout=60) as phone:
        sid = phone.post("/sessions", json={"agent": "assistant"}).json()["id"]
        run_id = phone.post(f"/sessions/{sid}/turns", json={"message": "hi"}).headers["x-run-id"]
        replay = phone.get(f"/sessions/{sid}/turns/{run_id}/events")
        assert replay.status_code == 200 and sse.parse(replay.text)[-1]["event"] == "TurnCompleted"
    for token in (User(server_url, sub="pool-user-1").headers["Authorization"].split()[1],
                  pool.token("pool-user-1", expires_in=-60)):
        r = httpx.get(f"{server_url}/sessions/{sid}/turns/{run_id}/events",
                      headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert httpx.get(f"{server_url}/agents", headers=signed).status_code == 200
    assert pool.fetches == 1  # the keys were fetched once
