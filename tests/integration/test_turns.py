"""Agent turns end to end: the chat API under uvicorn, the real agno and anthropic SDK talking to
the stand-in model, a real Postgres and the moto S3 server."""

from __future__ import annotations

import base64
import json
import threading
import time
from decimal import Decimal

import boto3
import httpx
from genai_prices import Usage, calc_price

from chatcore.wire import sse
from tests.support.images import LARGE_PNG, LARGE_STORED, SMALL_PNG, SMALL_STORED, b64
from tests.support.turns import reported_usage, run_row


def rows_of_run(db_conn, run_id):
    return db_conn.execute("SELECT * FROM chat_events WHERE run_id = %s ORDER BY id", (run_id,)).fetchall()


def test_turn_streams_agno_events_and_ends_with_turn_completed(user, standin, db_conn):
    sid = user.new_session()
    r, events = user.turn(sid, message="What is 12 * 7?")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    names = [e["event"] for e in events]
    assert names[0] == "RunStarted"
    assert {"RunContent", "ToolCallStarted", "ToolCallCompleted", "RunCompleted"} <= set(names)
    assert names.index("ToolCallStarted") < names.index("ToolCallCompleted") < names.index("RunCompleted")
    assert names[-1] == "TurnCompleted" and names.count("TurnCompleted") == 1 and "TurnFailed" not in names
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    tool_done = next(e for e in events if e["event"] == "ToolCallCompleted")
    assert tool_done["data"]["tool"]["result"] == "84"
    final = events[-1]["data"]
    assert final["session_id"] == sid
    assert set(final["usage"]) == {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"}
    Decimal(final["cost"]["usd"]), Decimal(final["cost"]["zar"])  # decimal strings
    run = run_row(db_conn, final["run_id"])
    assert run["status"] == "completed" and run["client_disconnected"] is False
    streamed = "".join(e["data"].get("content") or "" for e in events if e["event"] == "RunContent")
    assert "The tool returned: 84" in streamed


def test_stored_rows_tokens_and_costs_match_the_model_and_genai_prices(user, standin, db_conn):
    sid = user.new_session()
    _, events = user.turn(sid, message="What is (3 + 4) * 6?")
    final = events[-1]["data"]
    rows = rows_of_run(db_conn, final["run_id"])
    # user, assistant (tool call), tool result, assistant (answer); never a system message
    assert [r["role"] for r in rows] == ["user", "assistant", "tool", "assistant"]
    # stored tokens equal what the model reported, request by request
    requests = standin.requests()
    assistant_rows = [r for r in rows if r["role"] == "assistant"]
    assert len(requests) == len(assistant_rows) == 2
    fx = db_conn.execute("SELECT rate FROM fx_rates WHERE base='USD' AND quote='ZAR' ORDER BY effective_date DESC LIMIT 1").fetchone()["rate"]
    for row, req in zip(assistant_rows, requests):
        u = req["response"]["usage"]
        assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
            u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"], u["cache_creation_input_tokens"])
        expected = calc_price(
            Usage(input_tokens=u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"],
                  output_tokens=u["output_tokens"], cache_read_tokens=u["cache_read_input_tokens"],
                  cache_write_tokens=u["cache_creation_input_tokens"]),
            model_ref=row["model_id"], provider_id="anthropic").total_price
        assert row["cost_usd"] == expected
        assert row["cost_in_rands"] == row["cost_usd"] * fx
        assert row["fx_rate"] == fx and row["fx_rate_date"] is not None and row["price_id"] is not None
        assert row["model_provider_slug"] == "anthropic" and row["model_id"] == "claude-sonnet-5-5"
        assert row["agent_name"] == "assistant"
    # TurnCompleted equals the sum of the turn's rows, and what the model reported
    total = {k: sum(r[k] for r in rows) for k in final["usage"]}
    assert final["usage"] == total == reported_usage(standin)
    assert Decimal(final["cost"]["usd"]) == sum(r["cost_usd"] for r in rows)
    assert Decimal(final["cost"]["zar"]) == sum(r["cost_in_rands"] for r in rows)
    run = run_row(db_conn, final["run_id"])
    assert run["cost_usd"] == Decimal(final["cost"]["usd"]) and run["input_tokens"] == total["input_tokens"]
    # the price row records the pinned version
    price = db_conn.execute("SELECT * FROM prices WHERE id = %s", (assistant_rows[0]["price_id"],)).fetchone()
    assert price["model"] == "claude-sonnet-5-5" and price["source"].startswith("genai-prices")


def _image_blocks(request_body):
    return [block for m in request_body["messages"] if isinstance(m["content"], list)
            for block in m["content"] if block.get("type") == "image"]


def test_two_turn_conversation_with_image_replays_history_and_image(user, standin, db_conn, stack):
    sid = user.new_session()
    _, first = user.turn(sid, message="Look at this photo", images=[{"data": b64(LARGE_PNG), "mime_type": "image/png"}])
    assert first[-1]["event"] == "TurnCompleted"
    first_run = first[-1]["data"]["run_id"]
    n_first = len(standin.requests())
    _, second = user.turn(sid, message="And what colour was it?")
    assert second[-1]["event"] == "TurnCompleted"
    second_request = standin.requests()[n_first]["body"]
    texts = json.dumps(second_request["messages"])
    assert "Look at this photo" in texts and "And what colour was it?" in texts
    # the first turn's assistant answer is replayed too
    first_answer = "".join(e["data"].get("content") or "" for e in first if e["event"] == "RunContent")
    assert first_answer.strip() and first_answer.strip()[:40] in texts
    # the image of turn 1 reaches the model again in turn 2, byte for byte
    images = _image_blocks(second_request)
    assert len(images) == 1
    assert base64.b64decode(images[0]["source"]["data"]) == LARGE_STORED
    # no row holds the large image's base64; the user row holds an S3 reference
    for row in db_conn.execute("SELECT message_parts::text AS t FROM chat_events WHERE session_id = %s", (sid,)):
        assert b64(LARGE_PNG)[:200] not in row["t"] and b64(LARGE_STORED)[:200] not in row["t"]
    user_row = rows_of_run(db_conn, first_run)[0]
    ref = user_row["message_parts"]["images"][0]["media_reference"]
    assert ref["storage_key"].startswith(f"media/{sid}-") and ref["size"] == len(LARGE_STORED)
    s3 = boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
    obj = s3.get_object(Bucket=stack.env["MEDIA_BUCKET"], Key=ref["storage_key"])
    assert obj["Body"].read() == LARGE_STORED and obj["ContentType"] == "image/jpeg"
    # the second turn stored only its own new messages
    second_rows = rows_of_run(db_conn, second[-1]["data"]["run_id"])
    assert [r["role"] for r in second_rows] == ["user", "assistant"]
    assert db_conn.execute("SELECT count(*) AS n FROM chat_events WHERE session_id = %s", (sid,)).fetchone()["n"] == 4
    # and the stored history loads back as List[Message]
    from agno.models.message import Message

    msgs = [Message.from_dict(r["message_parts"]) for r in
            db_conn.execute("SELECT message_parts FROM chat_events WHERE session_id = %s ORDER BY id", (sid,))]
    assert [m.role for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[0].images[0].media_reference.storage_key == ref["storage_key"]


def test_small_image_stays_inline_and_reaches_the_model(user, standin, db_conn):
    sid = user.new_session()
    _, events = user.turn(sid, message="tiny", images=[{"data": b64(SMALL_PNG)}])
    assert events[-1]["event"] == "TurnCompleted"
    row = rows_of_run(db_conn, events[-1]["data"]["run_id"])[0]
    image = row["message_parts"]["images"][0]
    assert "media_reference" not in image and base64.b64decode(image["content"]) == SMALL_STORED
    assert base64.b64decode(_image_blocks(standin.requests()[0]["body"])[0]["source"]["data"]) == SMALL_STORED
    # event payloads never carry image bytes to the phone
    for e in events:
        assert b64(SMALL_PNG) not in json.dumps(e["data"])


def test_same_image_twice_in_a_session_is_one_s3_object(user, standin, stack):
    sid = user.new_session()
    for _ in range(2):
        _, events = user.turn(sid, message="again", images=[{"data": b64(LARGE_PNG)}])
        assert events[-1]["event"] == "TurnCompleted"
    s3 = boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
    keys = s3.list_objects_v2(Bucket=stack.env["MEDIA_BUCKET"], Prefix=f"media/{sid}-").get("Contents", [])
    assert len(keys) == 1


def test_model_error_is_stored_as_failed_turn_and_not_replayed(user, standin, db_conn):
    sid = user.new_session()
    standin.script([{"error": {"status": 400, "type": "invalid_request_error", "message": "prompt is too long"}}])
    r, events = user.turn(sid, message="this one fails")
    assert r.status_code == 200
    assert events[-1]["event"] == "TurnFailed" and "TurnCompleted" not in [e["event"] for e in events]
    err = events[-1]["data"]["error"]
    assert err["code"].startswith("model-error") and "prompt is too long" in err["message"]
    run = run_row(db_conn, events[-1]["data"]["run_id"])
    assert run["status"] == "failed" and run["error_code"].startswith("model-error")
    rows = rows_of_run(db_conn, run["id"])
    assert rows[0]["role"] == "user" and rows[0]["message_parts"]["content"] == "this one fails"
    # the next turn works and the failed turn's message is not sent to the model again
    _, ok = user.turn(sid, message="second try")
    assert ok[-1]["event"] == "TurnCompleted"
    last_request = json.dumps(standin.requests()[-1]["body"]["messages"])
    assert "this one fails" not in last_request and "second try" in last_request


def test_model_error_mid_stream_after_a_tool_call_charges_the_completed_call(user, standin, db_conn):
    sid = user.new_session()
    # first call succeeds (tool call, billed); the second fails mid-stream on every retry
    standin.script([{"tool_use": {"name": "calculator", "input": {"expression": "2+2"}}}]
                   + [{"stream_error_after_chars": 5, "text": "partial answer here"}] * 3)
    _, events = user.turn(sid, message="add 2+2")
    assert events[-1]["event"] == "TurnFailed"
    final = events[-1]["data"]
    run = run_row(db_conn, final["run_id"])
    assert run["status"] == "failed"
    first_usage = standin.requests()[0]["response"]["usage"]
    assert run["input_tokens"] == first_usage["input_tokens"] and run["cost_usd"] > 0
    assert final["usage"]["input_tokens"] == first_usage["input_tokens"]
    assert sum(r["cost_usd"] for r in rows_of_run(db_conn, run["id"])) == run["cost_usd"]


def test_tool_error_completes_the_turn_with_the_error_recorded(user, standin, db_conn):
    sid = user.new_session()
    standin.script([{"tool_use": {"name": "calculator", "input": {"expression": "1/0"}}}])
    _, events = user.turn(sid, message="divide by zero")
    names = [e["event"] for e in events]
    assert names[-1] == "TurnCompleted"
    run = run_row(db_conn, events[-1]["data"]["run_id"])
    assert run["status"] == "completed" and run["error_code"] == "tool-error"
    tool_row = next(r for r in rows_of_run(db_conn, run["id"]) if r["role"] == "tool")
    assert tool_row["message_parts"].get("tool_call_error") is True
    assert "DivisionByZero" in json.dumps(tool_row["message_parts"])
    assert events[-1]["data"]["tool_errors"] == 1


def test_same_client_turn_id_neither_runs_nor_charges_twice(user, standin, db_conn):
    sid = user.new_session()
    _, first = user.turn(sid, message="hello", client_turn_id="turn-abc-1")
    n_requests = len(standin.requests())
    n_rows = db_conn.execute("SELECT count(*) AS n FROM chat_events WHERE session_id=%s", (sid,)).fetchone()["n"]
    r, again = user.turn(sid, message="hello", client_turn_id="turn-abc-1")
    # the retry is answered with the stored stream: the same events, ids and data, not a second run
    assert r.status_code == 200 and again == first
    assert r.headers["x-run-id"] == first[-1]["data"]["run_id"]
    # a retry that says which events it has (Last-Event-ID) gets only the rest
    r = user.client.post(f"/sessions/{sid}/turns", json={"message": "hello", "client_turn_id": "turn-abc-1"},
                         headers={"Last-Event-ID": str(len(first) - 2)})
    assert sse.parse(r.text) == first[-2:]
    assert len(standin.requests()) == n_requests
    assert db_conn.execute("SELECT count(*) AS n FROM chat_events WHERE session_id=%s", (sid,)).fetchone()["n"] == n_rows
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id=%s", (sid,)).fetchone()["n"] == 1
    # a failed turn's retry returns the stored failure, not a second model call
    standin.script([{"error": {"status": 400, "type": "invalid_request_error", "message": "nope"}}])
    _, failed = user.turn(sid, message="x", client_turn_id="turn-abc-2")
    _, failed_again = user.turn(sid, message="x", client_turn_id="turn-abc-2")
    assert failed[-1]["event"] == "TurnFailed" and failed_again == failed


def test_client_disconnect_does_not_stop_the_run(user, standin, db_conn, server_url):
    sid = user.new_session()
    standin.script([{"text": "a slow answer " * 10, "delay_ms": 40}])
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=30) as client:
        with client.stream("POST", f"/sessions/{sid}/turns", json={"message": "slow please"}) as r:
            assert r.status_code == 200
            first = next(r.iter_lines())
            assert first.startswith("id:")
        # leaving the block closes the connection mid-stream
    deadline = time.time() + 20
    while time.time() < deadline:
        run = db_conn.execute("SELECT * FROM runs WHERE session_id = %s", (sid,)).fetchone()
        if run and run["status"] != "running":
            break
        time.sleep(0.1)
    assert run["status"] == "completed" and run["client_disconnected"] is True
    roles = [r["role"] for r in rows_of_run(db_conn, run["id"])]
    assert roles == ["user", "assistant"]
    assert run["output_tokens"] > 0 and run["cost_usd"] > 0


def test_a_second_turn_while_one_runs_is_409(user, standin, server_url):
    sid = user.new_session()
    standin.script([{"text": "slow " * 30, "delay_ms": 150}])
    results = {}

    def slow_turn():
        results["slow"] = user.turn(sid, message="slow")

    t = threading.Thread(target=slow_turn)
    t.start()
    time.sleep(0.6)
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=30) as c:
        r = c.post(f"/sessions/{sid}/turns", json={"message": "me too"})
    t.join()
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "turn-in-progress"
    assert results["slow"][1][-1]["event"] == "TurnCompleted"


def test_user_message_is_stored_before_the_model_is_called(user, standin, db_conn):
    sid = user.new_session()
    standin.script([{"text": "slow " * 20, "delay_ms": 50}])
    seen = {}

    def poll():
        deadline = time.time() + 10
        while time.time() < deadline and "row" not in seen:
            row = db_conn.execute(
                "SELECT ce.role, r.status FROM chat_events ce JOIN runs r ON r.id = ce.run_id "
                "WHERE ce.session_id = %s", (sid,)).fetchone()
            if row:
                seen["row"] = row
            time.sleep(0.02)

    t = threading.Thread(target=poll)
    t.start()
    user.turn(sid, message="store me first")
    t.join()
    assert seen["row"] == {"role": "user", "status": "running"}


def test_the_model_sees_the_last_history_max_turns_completed_turns(user, standin, db_conn, monkeypatch):
    from chatcore.config import get_settings

    monkeypatch.setenv("HISTORY_MAX_TURNS", "2")
    get_settings.cache_clear()
    try:
        sid = user.new_session()
        for i in range(4):
            _, events = user.turn(sid, message=f"message number {i}")
            assert events[-1]["event"] == "TurnCompleted"
        last = json.dumps(standin.requests()[-1]["body"]["messages"])
        assert "message number 3" in last and "message number 2" in last and "message number 1" in last
        assert "message number 0" not in last  # older than the last 2 completed turns: stored, not sent
        assert db_conn.execute("SELECT count(*) AS n FROM chat_events WHERE session_id = %s",
                               (sid,)).fetchone()["n"] == 8
    finally:
        monkeypatch.delenv("HISTORY_MAX_TURNS")
        get_settings.cache_clear()
