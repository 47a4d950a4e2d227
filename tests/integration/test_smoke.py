"""`bin/smoke URL TOKEN`, the smoke test of a deployed stage, run as a command against the served API
(the session's uvicorn server on the test Postgres, moto and the stand-in; and `bin/serve` itself with
the token it prints). It passes and leaves no session behind; it fails naming the step, with the HTTP
status and the problem+json body, for a refused token, a failed model call and a stream cut before
its final event, and still deletes the session it made; bad arguments are exit 2. The stream parser
alone: tests/unit/test_smoke_stream.py."""

from __future__ import annotations

import re
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from psycopg.rows import dict_row

from chatcore.web.identity import unsigned_jwt
from tests.support.tcp_proxy import CuttingProxy
from tests.support import pg

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["list agents", "create session", "stream turn", "read messages", "usage", "pause", "decline", "delete session",
         "session gone"]


def smoke(url: str, token: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "bin" / "smoke"), url, token, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def new_caller() -> tuple[str, str]:
    sub = f"smoke-{uuid.uuid4()}"
    return sub, unsigned_jwt({"sub": sub})


def printed_session(out: str) -> str:
    found = re.search(r"ok    2 create session .* session ([0-9a-f-]{36})", out)
    assert found, out
    return found.group(1)


def sessions_of(db_conn, sub: str) -> list[str]:
    return [str(r["id"]) for r in db_conn.execute(
        "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.sub = %s", (sub,))]


def assert_running_turn_stopped_and_session_deleted(out: str, db_conn, sub: str) -> None:
    """The cleanup found the turn still running, asked it to stop, then deleted the session."""
    session_id = printed_session(out)
    assert "cleanup: a turn still runs in the session; asked it to stop" in out
    assert f"cleanup: session {session_id} deleted" in out
    assert_session_deleted(db_conn, sub, session_id)


def assert_session_deleted(db_conn, sub: str, session_id: str) -> None:
    assert sessions_of(db_conn, sub) == []
    for table in ("sessions", "runs", "chat_events"):
        column = "id" if table == "sessions" else "session_id"
        n = db_conn.execute(f"SELECT count(*) AS n FROM {table} WHERE {column} = %s", (session_id,)).fetchone()["n"]
        assert n == 0, f"{n} row(s) of session {session_id} left in {table}"


def test_smoke_passes_against_the_served_api_and_leaves_no_session(server_url, standin, db_conn):
    sub, token = new_caller()
    result = smoke(server_url, token, "--prompt", "What is 6 * 7?", "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    lines = [line for line in out.splitlines() if re.match(r"(ok|FAIL) ", line)]
    assert [re.match(r"ok    (\d) (.+?)\s+\d+\.\d\d s  ", line).groups() for line in lines] == \
        [(str(i), name) for i, name in enumerate(STEPS, 1)], out
    assert f"bin/smoke: {server_url} as sub {sub!r}" in out
    assert "using 'assistant'" in out  # the first agent GET /agents lists
    run_id = re.search(r"TurnCompleted, run ([0-9a-f-]{36}) \(= X-Run-Id\)", out).group(1)
    assert "user, assistant" in out and "GET /sessions/{id} is 404 not-found" in out
    assert re.search(r"smoke test passed: 9 steps in \d+\.\d\d s", out)
    # the pause and its decline: the card's summary shown, nothing set, the decision not taken twice
    assert "TurnPaused, run " in out and "set_reminder: 'Remind you to call mom at 18:00 (Africa/Johannesburg)'" in out
    assert "no reminder set; a second decision is 409 turn-not-paused" in out
    # the prompt reached the model, the run was stored and charged; then the session went
    assert any("What is 6 * 7?" in str(r) for r in standin.requests())
    session_id = printed_session(out)
    assert_session_deleted(db_conn, sub, session_id)
    assert db_conn.execute("SELECT count(*) AS n FROM deleted_session_usage d JOIN users u ON u.id = d.user_id "
                           "WHERE u.sub = %s", (sub,)).fetchone()["n"] >= 1, "the turn's usage is kept"
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE id = %s", (run_id,)).fetchone()["n"] == 0


def test_a_named_agent_is_used_and_an_unknown_one_fails_the_first_step(server_url, standin, db_conn):
    sub, token = new_caller()
    result = smoke(server_url, token, "--agent", "calculator", "--timeout", "30")
    assert result.returncode == 0 and "using 'calculator'" in result.stdout, result.stdout + result.stderr
    result = smoke(server_url, token, "--agent", "no-such-agent")
    assert result.returncode == 1
    assert "FAIL  1 list agents" in result.stdout and "no agent 'no-such-agent' is offered; the agents are " \
        "assistant, calculator, converter" in result.stdout, result.stdout
    assert sessions_of(db_conn, sub) == []


def test_a_refused_token_fails_the_first_step_with_the_401_problem(server_url, db_conn):
    result = smoke(server_url, "not-a-jwt")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"FAIL  1 list agents\s+\d+\.\d\d s  GET /agents: HTTP 401, expected 200", out), out
    assert "HTTP 401 Unauthorized (application/problem+json):" in out
    assert '"code": "unauthorized"' in out and '"detail": "the bearer token is not a JWT"' in out
    assert "smoke test FAILED at step 1 list agents" in out
    assert "cleanup" not in out and "ok    2" not in out  # no session was made


def test_a_failed_model_call_fails_the_stream_step_and_the_session_is_still_deleted(server_url, standin, db_conn):
    sub, token = new_caller()
    standin.script([{"error": {"status": 400, "type": "invalid_request_error", "message": "smoke test refusal"}}])
    result = smoke(server_url, token, "--timeout", "30")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"FAIL  3 stream turn\s+\d+\.\d\d s  the turn failed: TurnFailed 'model-error:invalid_request'",
                     out), out
    assert "smoke test refusal" in out and "(retryable: False)" in out
    assert "smoke test FAILED at step 3 stream turn" in out and "ok    4" not in out
    session_id = printed_session(out)
    assert f"cleanup: session {session_id} deleted" in out
    assert_session_deleted(db_conn, sub, session_id)


def test_a_stream_cut_before_its_final_event_fails_and_the_running_turn_is_stopped_and_deleted(
        server_url, standin, db_conn):
    """The connection drops mid-stream (a proxy cuts it after the first content): the turn still runs
    on the server, so the cleanup's DELETE is 409 turn-in-progress; it stops the turn and deletes."""
    sub, token = new_caller()
    standin.script([{"text": "a slow answer, word by word, " * 10, "delay_ms": 150}])
    host, port = server_url.removeprefix("http://").split(":")
    proxy = CuttingProxy(host, int(port), trigger=b"event: RunContent")
    try:
        result = smoke(proxy.url, token, "--timeout", "30")
    finally:
        proxy.close()
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert proxy.cuts == 1
    assert re.search(r"FAIL  3 stream turn\s+\d+\.\d\d s  the stream broke after \d+ events .*before a final event: "
                     r"RemoteProtocolError", out), out
    assert_running_turn_stopped_and_session_deleted(out, db_conn, sub)


def test_a_stream_silent_past_the_timeout_fails_and_the_running_turn_is_stopped_and_deleted(
        server_url, standin, db_conn):
    sub, token = new_caller()
    standin.script([{"text": "an answer that takes its time", "delay_ms": 8000}])
    result = smoke(server_url, token, "--timeout", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"FAIL  3 stream turn\s+\d+\.\d\d s  the stream stalled \(nothing within --timeout seconds, "
                     r"not even a ping\) after \d+ events .*before a final event: ReadTimeout", out), out
    assert_running_turn_stopped_and_session_deleted(out, db_conn, sub)


def test_smoke_passes_against_bin_serve_with_the_token_it_prints(serve):
    serve.start().wait_ready()
    assert f'bin/smoke {serve.url} "$TOKEN"' in serve.log  # bin/serve says how
    result = smoke(serve.url, serve.token, "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr + serve.log
    assert f"as sub {serve.sub!r}" in result.stdout and "smoke test passed" in result.stdout
    session_id = printed_session(result.stdout)
    # bin/serve's own database (its throwaway cluster): the user is there, its session is not
    port = serve.printed_port(r"postgres: started a throwaway cluster on port (\d+)")
    with pg.connect(f"postgresql://postgres@127.0.0.1:{port}/chat", row_factory=dict_row) as conn:
        assert conn.execute("SELECT count(*) AS n FROM users WHERE sub = %s", (serve.sub,)).fetchone()["n"] == 1
        assert_session_deleted(conn, serve.sub, session_id)
    serve.send(signal.SIGTERM)
    assert serve.wait(20) == 0, serve.log


@pytest.mark.parametrize("args, says", [
    (["https://abc.execute-api.eu-west-1.amazonaws.com/prod"], "the following arguments are required: TOKEN"),
    (["https://abc.execute-api.eu-west-1.amazonaws.com/prod", ""], "the token is empty (is $TOKEN set?)"),
    (["abc.execute-api.eu-west-1.amazonaws.com/prod", "token"], "is not an http(s) URL"),
    (["ftp://example.com", "token"], "'ftp://example.com' is not an http(s) URL"),
    (["https://example.com/prod", "token", "--timeout", "0"], "above 0 and at most 900"),
    (["https://example.com/prod", "token", "--prompt", " "], "the prompt is empty"),
    ([], "the following arguments are required: URL, TOKEN"),
])
def test_bad_arguments_are_exit_2_with_a_clear_message(args, says):
    result = subprocess.run([str(ROOT / "bin" / "smoke"), *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("usage: bin/smoke URL TOKEN") and says in result.stderr, result.stderr
    assert result.stdout == ""
