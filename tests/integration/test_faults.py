"""Faults answered properly: requests racing with the same client_turn_id, a retry key reused for a
different message, model errors a phone can act on, Postgres unreachable (503 with Retry-After,
never a 500), and unusual inputs (a date at the end of the calendar, JSON nested 100,000 deep, bytes
that are not UTF-8, a method the route does not have) answered with the right 4xx, never a 500."""

from __future__ import annotations

import json
import threading
from collections import Counter

import httpx
import pytest

from chatcore import db
from chatcore.wire import sse
from tests.support.users import User
from tests.support import pg

PROBLEM = "application/problem+json"


def test_the_same_client_turn_id_at_the_same_moment_is_one_run_and_never_a_5xx(server_url, standin, db_conn):
    pairs = 20
    users = [User(server_url) for _ in range(pairs)]
    sessions = [u.new_session() for u in users]
    barrier = threading.Barrier(2 * pairs)
    results: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        user, sid = users[i // 2], sessions[i // 2]
        client = httpx.Client(base_url=server_url, headers=user.headers, timeout=60)
        barrier.wait()
        r = client.post(f"/sessions/{sid}/turns", json={"message": "hello", "client_turn_id": f"same-{i // 2}"})
        last = ""
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            last = sse.parse(r.text)[-1]["event"]
        with lock:
            results.append((i // 2, r.status_code, last or r.json().get("code", "")))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2 * pairs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2 * pairs
    assert all(status < 500 for _, status, _ in results), results
    # each request ran the turn, replayed its outcome, or was told it is still running
    assert {(s, what) for _, s, what in results} <= {(200, "TurnCompleted"), (409, "turn-in-progress")}, results
    assert all(n >= 1 for n in Counter(i for i, s, what in results if s == 200).values())
    for i, sid in enumerate(sessions):
        runs = db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id = %s AND client_turn_id = %s",
                               (sid, f"same-{i}")).fetchone()["n"]
        assert runs == 1


def test_a_client_turn_id_sent_again_with_a_different_message_is_a_409_naming_it(user, standin, db_conn):
    sid = user.new_session()
    _, first = user.turn(sid, message="what is 2 + 2?", client_turn_id="key-1")
    assert first[-1]["event"] == "TurnCompleted"
    r = user.client.post(f"/sessions/{sid}/turns", json={"message": "something else", "client_turn_id": "key-1"})
    assert r.status_code == 409 and r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == "client-turn-id-reused" and r.json()["run_id"] == first[-1]["data"]["run_id"]
    # the same message again is still a retry: answered from what is stored
    _, again = user.turn(sid, message="what is 2 + 2?", client_turn_id="key-1")
    assert again == first
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id = %s", (sid,)).fetchone()["n"] == 1


@pytest.mark.parametrize("error, code, retryable", [
    ({"status": 429, "type": "rate_limit_error", "message": "slow down"}, "model-error:rate_limited", True),
    ({"status": 529, "type": "overloaded_error", "message": "overloaded"}, "model-error:overloaded", True),
    ({"status": 400, "type": "invalid_request_error", "message": "bad"}, "model-error:invalid_request", False),
])
def test_model_errors_tell_the_app_whether_a_retry_can_help(user, standin, error, code, retryable):
    standin.script([{"error": error}] * 3)  # the SDK retries 429 and 529 twice
    sid = user.new_session()
    _, events = user.turn(sid, message="hello")
    final = events[-1]
    assert final["event"] == "TurnFailed"
    assert final["data"]["error"]["code"] == code and final["data"]["error"]["retryable"] is retryable


def test_postgres_down_is_a_503_problem_with_retry_after_never_a_500(server_url, standin, postgres_down):
    user = User(server_url)  # a caller the process has not seen: its first request needs the database
    for method, path, body in (("GET", "/agents", None), ("GET", "/sessions", None),
                               ("POST", "/sessions", {"agent": "assistant"}),
                               ("POST", "/sessions/01a23189-72f8-770b-a4af-c01b8b4bba94/turns", {"message": "hi"})):
        r = user.client.request(method, path, json=body)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.headers["content-type"].startswith(PROBLEM) and r.headers["retry-after"] == "5"
        assert r.json()["code"] == "database-unavailable"


def test_after_postgres_is_back_requests_answer_again(user, standin):
    sid = user.new_session()
    _, events = user.turn(sid, message="hello again")
    assert events[-1]["event"] == "TurnCompleted"


def test_unusual_inputs_get_the_right_4xx_problem_never_a_500(user, standin):
    sid = user.new_session()
    r = user.client.get("/usage", params={"from": "9999-12-31", "to": "9999-12-31"})
    assert r.status_code == 422 and r.json()["code"] == "invalid-input"
    deep = "[" * 100_000 + "]" * 100_000
    for path in (f"/sessions/{sid}/turns", "/sessions"):
        r = user.client.post(path, content=deep, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["code"] == "invalid-input", (path, r.text)
    r = user.client.post("/sessions", content=b'{"agent": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM), r.text
    r = user.client.post("/sessions", json={"agent": "assistant", "title": ""})
    assert r.status_code == 422
    r = user.client.put("/sessions")
    assert r.status_code == 405 and r.headers["content-type"].startswith(PROBLEM)
    allowed = {m.strip() for m in r.headers["allow"].split(",")}
    assert allowed and allowed <= {"GET", "POST", "HEAD"}, allowed


def test_photos_go_to_s3_with_no_database_connection_held_and_reads_never_write_to_s3(user, standin, stack,
                                                                                     monkeypatch):
    import boto3

    from chatcore.media import s3
    from tests.support.images import LARGE_PNG, SMALL_PNG, b64

    from contextlib import contextmanager

    held, in_use = [], threading.local()
    real_put, real_connection = s3.put_image, db.connection

    @contextmanager
    def connection():  # counts the connections this thread holds
        in_use.n = getattr(in_use, "n", 0) + 1
        try:
            with real_connection() as conn:
                yield conn
        finally:
            in_use.n -= 1

    def put_image(key, content, mime_type):
        held.append(getattr(in_use, "n", 0))
        return real_put(key, content, mime_type)

    monkeypatch.setattr(db, "connection", connection)
    monkeypatch.setattr(s3, "put_image", put_image)
    sid = user.new_session()
    _, events = user.turn(sid, message="two photos", images=[{"data": b64(LARGE_PNG)}, {"data": b64(SMALL_PNG)}])
    assert events[-1]["event"] == "TurnCompleted"
    assert held == [0, 0]  # both photos (the inline one too) were uploaded with no connection in use
    client = boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
    bucket = stack.env["MEDIA_BUCKET"]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=f"media/{sid}-")["Contents"]]
    assert len(keys) == 2
    # reading the messages signs URLs locally: with the objects gone it writes nothing back
    for key in keys:
        client.delete_object(Bucket=bucket, Key=key)
    items = user.client.get(f"/sessions/{sid}/messages").json()["items"]
    assert len(items[0]["images"]) == 2 and all(i["url"].startswith("http") for i in items[0]["images"])
    assert client.list_objects_v2(Bucket=bucket, Prefix=f"media/{sid}-").get("KeyCount") == 0


@pytest.fixture()
def impatient_model(models_env):
    """MODEL_IDLE_TIMEOUT=1 and one retry for this test: the models (built once per process) anew."""
    models_env(MODEL_IDLE_TIMEOUT="1", MODEL_MAX_RETRIES="1")


def test_a_silent_model_ends_the_turn_with_a_terminal_event(user, standin, impatient_model, db_conn):
    # each chunk comes after 4 s of silence: without the idle timeout the turn would complete, slowly
    standin.script([{"text": "this answer never comes through in time", "delay_ms": 4000}] * 4)
    sid = user.new_session()
    _, events = user.turn(sid, message="hello?")
    final = events[-1]
    assert final["event"] == "TurnFailed", final
    assert final["data"]["error"]["code"] == "model-error:unavailable" and final["data"]["error"]["retryable"]
    run = db_conn.execute("SELECT status FROM runs WHERE id = %s", (final["data"]["run_id"],)).fetchone()
    assert run["status"] == "failed"


def test_a_stream_cut_without_message_stop_fails_the_turn_and_keeps_what_was_billed(user, standin, db_conn):
    standin.script([{"cut_after_chars": 8, "text": "Let me check that for you."}] * 3)
    sid = user.new_session()
    _, events = user.turn(sid, message="what is the capital of France?")
    final = events[-1]
    assert final["event"] == "TurnFailed", final
    assert final["data"]["error"]["code"] == "model-error:unavailable" and final["data"]["error"]["retryable"]
    assert "message_stop" in final["data"]["error"]["message"]
    run = db_conn.execute("SELECT status, input_tokens, cost_usd FROM runs WHERE id = %s",
                          (final["data"]["run_id"],)).fetchone()
    billed = [r["response"]["usage"] for r in standin.requests() if (r.get("response") or {}).get("cut")]
    assert run["status"] == "failed" and billed
    # what the provider reported before each cut is stored and priced, never replaced by zeros
    assert run["input_tokens"] == sum(u["input_tokens"] for u in billed) and run["cost_usd"] > 0
    assert final["data"]["usage"]["input_tokens"] == run["input_tokens"]
    # the cut answer is not history: the next turn does not see "Let me c"
    standin.reset()  # scripted cuts the retries did not use are dropped
    _, after = user.turn(sid, message="and of Italy?")
    assert after[-1]["event"] == "TurnCompleted"
    assert "Let me c" not in json.dumps(standin.requests()[-1]["body"]["messages"])


def test_postgres_restarted_while_the_model_answers_loses_nothing(user, standin, stack):
    from psycopg.rows import dict_row

    if stack.postgres is None:
        pytest.fail("this fault test restarts Postgres: run it with the throwaway cluster (DATABASE_URL unset)")
    sid = user.new_session()
    # a slow answer: about 3 s of streaming, during which Postgres goes down for a second
    standin.script([{"text": "a slow and careful answer " * 6, "delay_ms": 300}])
    result: list = []
    turn = threading.Thread(target=lambda: result.append(user.turn(sid, message="take your time")))
    turn.start()
    import time

    time.sleep(0.8)
    stack.postgres.restart(down_seconds=1.0)
    turn.join(60)
    _, events = result[0]
    assert events[-1]["event"] == "TurnCompleted", events[-1]  # stored once Postgres was back
    with pg.connect(stack.env["DATABASE_URL"], autocommit=True, row_factory=dict_row) as conn:
        run = conn.execute("SELECT status, cost_usd FROM runs WHERE id = %s",
                           (events[-1]["data"]["run_id"],)).fetchone()
        assert run["status"] == "completed" and run["cost_usd"] > 0
        assert conn.execute("SELECT count(*) AS n FROM runs WHERE status = 'running' AND session_id = %s",
                            (sid,)).fetchone()["n"] == 0
    # requests after the restart answer: the pool's dead connections are replaced, never handed out
    assert user.client.get("/agents").status_code == 200
    _, after = user.turn(sid, message="and now?")
    assert after[-1]["event"] == "TurnCompleted"


def test_s3_failing_at_turn_start_is_a_503_and_the_run_is_closed(user, standin, db_conn, monkeypatch):
    from chatcore.media import agno_storage, s3
    from tests.support.images import LARGE_PNG, b64

    sid = user.new_session()
    _, events = user.turn(sid, message="a photo", images=[{"data": b64(LARGE_PNG)}])
    assert events[-1]["event"] == "TurnCompleted"
    agno_storage._image_cache.items.clear()  # a new sandbox: the history photo must come from S3
    agno_storage._image_cache.size = 0

    def refused(key):
        raise ConnectionRefusedError("S3 refuses connections")

    monkeypatch.setattr(s3, "get_image", refused)
    r = user.client.post(f"/sessions/{sid}/turns", json={"message": "and now?"})
    assert r.status_code == 503 and r.headers["retry-after"] == "5" and r.json()["code"] == "storage-unavailable"
    runs = db_conn.execute("SELECT status, error_code FROM runs WHERE session_id = %s ORDER BY id", (sid,)).fetchall()
    assert [(x["status"], x["error_code"]) for x in runs] == [("completed", None), ("failed", "storage-error")]
    monkeypatch.undo()
    _, after = user.turn(sid, message="and now?")  # S3 back: the session was never locked
    assert after[-1]["event"] == "TurnCompleted"


def test_twenty_concurrent_turns_under_a_budget_never_take_spend_past_it(server_url, standin, db_conn):
    from decimal import Decimal

    from chatcore.money import budgets

    user = User(server_url)
    sessions = [user.new_session() for _ in range(20)]
    # each answer bills 4,000 output tokens: 20 turns cost several times the budget's room
    expensive = {"text": "a long, slow answer, so the turns overlap", "delay_ms": 100,
                 "usage": {"input_tokens": 1500, "output_tokens": 4000}}
    standin.script([expensive] * 21)
    _, first = user.turn(sessions[0], message="hello")  # some spend, and the cost of one turn
    one_turn = Decimal(first[-1]["data"]["cost"]["zar"])
    uid = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    spent = budgets.month_spend(db_conn, uid)
    budgets.set_budget(db_conn, user.sub, spent.quantize(Decimal("0.01")))  # spent: what would a turn reserve?
    refused = user.client.post(f"/sessions/{sessions[1]}/turns", json={"message": "and again?"})
    assert refused.status_code == 402
    reservation = Decimal(refused.json()["reservation_zar"])
    budget = (spent + reservation * Decimal("1.5")).quantize(Decimal("0.01"))  # one reservation at a time
    assert 20 * one_turn > budget - spent + one_turn  # without reservations, spend would pass the budget
    budgets.set_budget(db_conn, user.sub, budget)
    barrier = threading.Barrier(20)
    statuses: list[int] = []

    def send(sid: str) -> None:
        client = httpx.Client(base_url=server_url, headers=user.headers, timeout=60)
        barrier.wait()
        statuses.append(client.post(f"/sessions/{sid}/turns", json={"message": "and again?"}).status_code)

    threads = [threading.Thread(target=send, args=(sid,)) for sid in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(statuses) == 20 and set(statuses) <= {200, 402}, statuses
    assert statuses.count(200) >= 1 and statuses.count(402) >= 1
    final = budgets.month_spend(db_conn, uid)
    assert final <= budget + one_turn, (final, budget, one_turn)
    status = budgets.budget_status(db_conn, uid)
    assert status["reserved_zar"] == "0.00"  # every reservation was released when its turn was stored


def test_a_turn_past_turn_timeout_ends_with_a_terminal_event_and_keeps_what_was_billed(user, standin, models_env,
                                                                                      db_conn):
    models_env(TURN_TIMEOUT="2")
    # a tool round (billed), then an answer trickling one chunk every 0.6 s: never silent, never done in time
    standin.script([{"tool_use": {"name": "calculator", "input": {"expression": "6 * 7"}}},
                    {"text": "and the answer is coming, slowly, word by word, " * 4, "delay_ms": 600}])
    sid = user.new_session()
    _, events = user.turn(sid, message="what is 6 * 7?")
    final = events[-1]
    assert final["event"] == "TurnFailed" and final["data"]["error"]["code"] == "turn-timeout", final
    assert final["data"]["error"]["retryable"] is True
    run = db_conn.execute("SELECT status, cost_usd FROM runs WHERE id = %s", (final["data"]["run_id"],)).fetchone()
    assert run["status"] == "failed" and run["cost_usd"] > 0  # the first, completed model call is charged


def test_s3_stalled_during_an_image_turn_holds_up_nothing_else(server_url, standin, s3_behind_a_proxy, db_conn):
    from tests.support.images import LARGE_PNG, b64

    photographer, other = User(server_url), User(server_url)
    sid, other_sid = photographer.new_session(), other.new_session()
    s3_behind_a_proxy.stalled.set()
    answers: list = []
    image_turn = threading.Thread(target=lambda: answers.append(photographer.client.post(
        f"/sessions/{sid}/turns", json={"message": "a photo", "images": [{"data": b64(LARGE_PNG)}]})))
    image_turn.start()
    # while the photo's upload hangs, unrelated requests are answered: no connection or lock is held
    assert other.client.get("/agents").status_code == 200
    assert other.client.post("/sessions", json={"agent": "assistant"}).status_code == 201
    _, events = other.turn(other_sid, message="a text turn meanwhile")
    assert events[-1]["event"] == "TurnCompleted"
    assert image_turn.is_alive()  # ... and all of that while the image turn was still stuck on S3
    image_turn.join(90)
    r = answers[0]
    assert r.status_code == 503 and r.json()["code"] == "storage-unavailable" and r.headers["retry-after"] == "5"
    # nothing of the refused turn is stored; the session is free for the next turn
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id = %s", (sid,)).fetchone()["n"] == 0


def test_s3_stalled_while_a_turn_reads_its_upload_is_a_503_and_the_upload_stays_usable(
        user, standin, s3_behind_a_proxy, db_conn):
    from tests.support.images import LARGE_PNG
    from tests.support.uploads import upload_row, uploaded

    sid = user.new_session()
    upload = uploaded(user, LARGE_PNG)  # sent through the proxy while S3 answers
    s3_behind_a_proxy.stalled.set()
    standin.reset()
    r, _ = user.turn(sid, message="this photo", images=[{"upload_id": upload["upload_id"]}])
    assert r.status_code == 503 and r.json()["code"] == "storage-unavailable" and r.headers["retry-after"] == "5"
    assert standin.requests() == []  # no model call, nothing stored, the upload not used up
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id = %s", (sid,)).fetchone()["n"] == 0
    assert upload_row(db_conn, upload["upload_id"])["consumed_at"] is None
    s3_behind_a_proxy.stalled.clear()  # S3 is back: the same turn goes through
    _, events = user.turn(sid, message="this photo", images=[{"upload_id": upload["upload_id"]}])
    assert events[-1]["event"] == "TurnCompleted"
    assert upload_row(db_conn, upload["upload_id"])["consumed_at"] is not None


def test_sessions_deleted_while_their_messages_are_read_leave_no_object_in_s3(server_url, standin, stack):
    import boto3

    from tests.support.images import LARGE_PNG, SMALL_PNG, b64

    user = User(server_url)
    sessions = []
    for i in range(5):
        sid = user.new_session()
        _, events = user.turn(sid, message=f"photos {i}", images=[{"data": b64(LARGE_PNG)}, {"data": b64(SMALL_PNG)}])
        assert events[-1]["event"] == "TurnCompleted"
        sessions.append(sid)
    stop = threading.Event()

    def read(sid: str) -> None:
        client = httpx.Client(base_url=server_url, headers=user.headers, timeout=60)
        while not stop.is_set():
            assert client.get(f"/sessions/{sid}/messages").status_code in (200, 404)

    readers = [threading.Thread(target=read, args=(sid,)) for sid in sessions for _ in range(2)]
    for t in readers:
        t.start()
    deleted = [user.client.delete(f"/sessions/{sid}").status_code for sid in sessions]
    stop.set()
    for t in readers:
        t.join(60)
    assert deleted == [204] * 5
    s3 = boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
    for sid in sessions:
        assert s3.list_objects_v2(Bucket=stack.env["MEDIA_BUCKET"], Prefix=f"media/{sid}-").get("KeyCount") == 0


def test_a_silent_model_gets_heartbeats_on_the_wire_and_the_turn_completes(user, standin, settings_env):
    settings_env.setenv("HEARTBEAT_SECONDS", "0.3")
    standin.script([{"text": "a pause before each part of this answer", "delay_ms": 1000}])
    sid = user.new_session()
    r = user.client.post(f"/sessions/{sid}/turns", json={"message": "take your time"})
    assert r.status_code == 200 and ": ping" in r.text  # comment lines while the model was silent
    assert sse.parse(r.text)[-1]["event"] == "TurnCompleted"
    # three pauses of a second each, a heartbeat every 0.3 s: at least two pings in each pause
    assert r.text.count(": ping") >= 6, r.text.count(": ping")
