"""Team turns: member events streamed and attributed, every run stored and linked, history with
images continued through additional_input, and usage/cost summed over leader and members."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

from tests.support.images import LARGE_PNG, LARGE_STORED, b64
from tests.support.turns import reported_usage, run_row

LEADER_MODEL, MEMBER_MODEL = "claude-sonnet-5-5", "claude-haiku-5-5"
DELEGATE = {"tool_use": {"name": "delegate_task_to_member",
                         "input": {"member_id": "calculator", "task": "compute 6 * 7"}}}


def team_session(user) -> str:
    r = user.client.post("/sessions", json={"team": "planner"})
    assert r.status_code == 201, r.text
    assert r.json()["team"] == "planner" and r.json()["agent"] is None
    return r.json()["id"]


def session_rows(db_conn, sid):
    return db_conn.execute(
        "SELECT ce.*, r.parent_run_id FROM chat_events ce JOIN runs r ON r.id = ce.run_id "
        "WHERE ce.session_id = %s ORDER BY ce.id", (sid,)).fetchall()


def test_teams_and_members_are_synced(db_conn, server_url):
    team = db_conn.execute("SELECT * FROM teams WHERE name = 'planner'").fetchone()
    assert team["active"] and team["model_id"] == LEADER_MODEL
    members = db_conn.execute(
        "SELECT a.name FROM team_members tm JOIN agents a ON a.id = tm.agent_id WHERE tm.team_id = %s "
        "ORDER BY tm.position", (team["id"],)).fetchall()
    assert [m["name"] for m in members] == ["calculator", "converter", "organiser"]


def test_team_turn_streams_member_events_attributed_and_stores_every_run(user, standin, db_conn):
    sid = team_session(user)
    r, events = user.turn(sid, message="What is 6 * 7?")
    assert r.status_code == 200
    names = [e["event"] for e in events]
    assert names[0] == "TeamRunStarted" and names[-1] == "TurnCompleted" and names.count("TurnCompleted") == 1
    assert {"TeamToolCallStarted", "TeamToolCallCompleted", "TeamRunContent", "TeamRunCompleted"} <= set(names)
    member_events = [e for e in events if e["event"] in ("RunStarted", "ToolCallStarted", "RunContent", "RunCompleted")]
    assert {e["event"] for e in member_events} == {"RunStarted", "ToolCallStarted", "RunContent", "RunCompleted"}
    final = events[-1]["data"]
    for e in member_events:
        assert e["data"]["agent_name"] == "calculator" and e["data"]["agent_id"] == "calculator"
        assert e["data"]["parent_run_id"] == final["run_id"]
    member_run_id = member_events[0]["data"]["run_id"]
    # every run stored, member linked to the team run
    member_run = run_row(db_conn, member_run_id)
    assert str(member_run["parent_run_id"]) == final["run_id"] and member_run["status"] == "completed"
    assert member_run["agent_name"] == "calculator"
    rows = session_rows(db_conn, sid)
    leader_rows = [r for r in rows if str(r["run_id"]) == final["run_id"]]
    member_rows = [r for r in rows if str(r["run_id"]) == member_run_id]
    assert [r["role"] for r in leader_rows] == ["user", "assistant", "tool", "assistant"]
    assert [r["role"] for r in member_rows] == ["user", "assistant", "tool", "assistant"]
    assert all(r["agent_name"] == "calculator" for r in member_rows)
    assert all(r["agent_name"] == "planner" for r in leader_rows if r["role"] != "user")
    assert {r["model_id"] for r in member_rows if r["role"] == "assistant"} == {MEMBER_MODEL}
    assert {r["model_id"] for r in leader_rows if r["role"] == "assistant"} == {LEADER_MODEL}
    assert len(rows) == len(leader_rows) + len(member_rows)  # no system rows, nothing else


def test_team_usage_and_cost_add_up_over_leader_and_members(user, standin, db_conn):
    sid = team_session(user)
    _, events = user.turn(sid, message="What is 6 * 7?")
    final = events[-1]["data"]
    requests = standin.requests()
    assert [r["body"]["model"] for r in requests] == [LEADER_MODEL, MEMBER_MODEL, MEMBER_MODEL, LEADER_MODEL]
    usages = [json.dumps(r["response"]["usage"], sort_keys=True) for r in requests]
    assert len(set(usages)) == len(usages)  # the stand-in reported distinct usage per request
    rows = session_rows(db_conn, sid)
    assistant_rows = [r for r in rows if r["role"] == "assistant"]
    assert len(assistant_rows) == len(requests)  # one row per model call, none counted twice
    stored = {k: sum(r[k] for r in rows) for k in final["usage"]}
    assert final["usage"] == stored == reported_usage(standin)
    # each row carries its own call's tokens: match rows to requests by their usage
    reported = sorted((u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"],
                       u["cache_creation_input_tokens"]) for u in (r["response"]["usage"] for r in requests))
    assert sorted((r["input_tokens"], r["output_tokens"], r["cache_read_tokens"], r["cache_write_tokens"])
                  for r in assistant_rows) == reported
    assert Decimal(final["cost"]["usd"]) == sum(r["cost_usd"] for r in rows) > 0
    assert Decimal(final["cost"]["zar"]) == sum(r["cost_in_rands"] for r in rows)
    runs = db_conn.execute("SELECT * FROM runs WHERE session_id = %s", (sid,)).fetchall()
    top = next(r for r in runs if r["parent_run_id"] is None)
    assert top["cost_usd"] == Decimal(final["cost"]["usd"])
    assert sum(r["cost_usd"] for r in runs if r["parent_run_id"] is not None) == sum(
        r["cost_usd"] for r in rows if r["agent_name"] == "calculator")


def _image_blocks(body):
    return [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]
            if b.get("type") == "image"]


def test_second_team_turn_replays_the_leader_conversation_with_the_image(user, standin, db_conn):
    sid = team_session(user)
    _, first = user.turn(sid, message="Budget for this trip: 1200 * 3?",
                         images=[{"data": b64(LARGE_PNG), "mime_type": "image/png"}])
    assert first[-1]["event"] == "TurnCompleted"
    # the member saw the photo too; no row holds its base64
    member_request = standin.requests()[1]["body"]
    assert [base64.b64decode(b["source"]["data"]) for b in _image_blocks(member_request)] == [LARGE_STORED]
    for row in session_rows(db_conn, sid):
        assert b64(LARGE_PNG)[:200] not in json.dumps(row["message_parts"])
    n = len(standin.requests())
    _, second = user.turn(sid, message="Thanks! Split that between 4 people.")
    assert second[-1]["event"] == "TurnCompleted"
    leader_request = standin.requests()[n]["body"]
    assert leader_request["model"] == LEADER_MODEL
    roles = [m["role"] for m in leader_request["messages"]]
    text = json.dumps(leader_request["messages"])
    # the whole first turn of the leader: user, delegation, tool result, answer; then the new message
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert "Budget for this trip" in text and "delegate_task_to_member" in text and "Split that between" in text
    first_answer = "".join(e["data"].get("content") or "" for e in first if e["event"] == "TeamRunContent").strip()
    assert first_answer and first_answer[:30] in text
    assert [base64.b64decode(b["source"]["data"]) for b in _image_blocks(leader_request)] == [LARGE_STORED]


def test_member_tool_error_is_stored_and_reported(user, standin, db_conn):
    sid = team_session(user)
    standin.script([DELEGATE, {"tool_use": {"name": "calculator", "input": {"expression": "1/0"}}}])
    _, events = user.turn(sid, message="divide by zero please")
    names = [e["event"] for e in events]
    assert "ToolCallError" in names or any(
        e["event"] == "ToolCallCompleted" and e["data"]["tool"].get("tool_call_error") for e in events)
    assert names[-1] == "TurnCompleted"
    final = events[-1]["data"]
    assert final["tool_errors"] >= 1
    run = run_row(db_conn, final["run_id"])
    assert run["status"] == "completed" and run["error_code"] == "tool-error"
    tool_rows = [r for r in session_rows(db_conn, sid) if r["role"] == "tool" and r["agent_name"] == "calculator"]
    assert tool_rows and tool_rows[0]["message_parts"].get("tool_call_error") is True


def test_member_model_error_is_stored_with_the_member_run_failed(user, standin, db_conn):
    sid = team_session(user)
    standin.script([DELEGATE, {"error": {"status": 400, "type": "invalid_request_error", "message": "member boom"}}])
    _, events = user.turn(sid, message="What is 6 * 7?")
    member_error = [e for e in events if e["event"] == "RunError"]
    assert member_error and member_error[0]["data"]["agent_name"] == "calculator"
    final = events[-1]
    assert final["event"] == "TurnCompleted"
    assert [m["agent_name"] for m in final["data"]["member_errors"]] == ["calculator"]
    assert "member boom" in final["data"]["member_errors"][0]["message"]
    run = run_row(db_conn, final["data"]["run_id"])
    assert run["status"] == "completed" and run["error_code"] == "member-error"
    member = db_conn.execute("SELECT * FROM runs WHERE parent_run_id = %s", (run["id"],)).fetchall()
    assert len(member) == 1 and member[0]["status"] == "failed" and member[0]["agent_name"] == "calculator"
    # the usage still adds up to every request the model answered
    assert final["data"]["usage"] == reported_usage(standin)


def test_leader_model_error_fails_the_turn_and_charges_what_ran(user, standin, db_conn):
    sid = team_session(user)
    standin.script([DELEGATE, {"text": "42"}]
                   + [{"error": {"status": 400, "type": "invalid_request_error", "message": "leader boom"}}])
    _, events = user.turn(sid, message="What is 6 * 7?")
    final = events[-1]
    assert final["event"] == "TurnFailed" and "leader boom" in final["data"]["error"]["message"]
    run = run_row(db_conn, final["data"]["run_id"])
    assert run["status"] == "failed"
    # the leader's first call and the member's call were billed, and are stored
    assert final["data"]["usage"] == reported_usage(standin)
    rows = session_rows(db_conn, sid)
    assert {r["agent_name"] for r in rows if r["role"] == "assistant"} == {"planner", "calculator"}
    assert Decimal(final["data"]["cost"]["usd"]) == sum(r["cost_usd"] for r in rows) > 0
    # the failed turn is not replayed into the next one
    n = len(standin.requests())
    _, ok = user.turn(sid, message="try again: 2 + 2")
    assert ok[-1]["event"] == "TurnCompleted"
    assert "What is 6 * 7?" not in json.dumps(standin.requests()[n]["body"]["messages"])


def test_a_session_belongs_to_exactly_one_agent_or_team(user, db_conn):
    r = user.client.post("/sessions", json={"agent": "assistant", "team": "planner"})
    assert r.status_code == 422
    import psycopg
    import pytest

    agent = db_conn.execute("SELECT id FROM agents WHERE name='assistant'").fetchone()["id"]
    team = db_conn.execute("SELECT id FROM teams WHERE name='planner'").fetchone()["id"]
    owner = db_conn.execute("SELECT id FROM users LIMIT 1").fetchone()["id"]
    with pytest.raises(psycopg.errors.CheckViolation):
        db_conn.execute("INSERT INTO sessions (id, user_id, agent_id, team_id) VALUES (gen_random_uuid(), %s, %s, %s)",
                        (owner, agent, team))
    with pytest.raises(psycopg.errors.CheckViolation):
        db_conn.execute("INSERT INTO sessions (id, user_id) VALUES (gen_random_uuid(), %s)", (owner,))


def test_stopping_a_team_turn_stops_the_member_and_stores_both_runs_cancelled(user, standin, db_conn, server_url):
    import time

    import httpx

    from chatcore.wire import sse

    sid = team_session(user)
    standin.script([DELEGATE, {"text": " ".join(f"n{i}" for i in range(300)), "delay_ms": 100}])
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=60) as c:
        with c.stream("POST", f"/sessions/{sid}/turns", json={"message": "count slowly"}) as r:
            run_id, text = r.headers["x-run-id"], ""
            lines = r.iter_lines()
            for line in lines:  # until the member has said something
                text += line + "\n"
                if line.startswith("event: RunContent"):
                    break
            n_requests = len(standin.requests())
            asked = time.monotonic()
            assert c.post(f"/sessions/{sid}/turns/{run_id}/cancel").status_code == 202
            text += "\n".join(lines)
            took = time.monotonic() - asked
    events = sse.parse(text)
    assert events[-1]["event"] == "TurnCancelled" and took < 3, (events[-1]["event"], took)
    # every stopped run (the leader's, the member's) ends with its RunCancelled, never a RunCompleted
    cancelled = {e["data"]["run_id"] for e in events if e["event"] in ("RunCancelled", "TeamRunCancelled")}
    assert run_id in cancelled and events[-2]["event"] == "TeamRunCancelled", [e["event"] for e in events[-5:]]
    assert not [e for e in events if e["event"] in ("RunCompleted", "TeamRunCompleted")
                and e["data"]["run_id"] in cancelled]
    leader = run_row(db_conn, run_id)
    members = db_conn.execute("SELECT * FROM runs WHERE parent_run_id = %s", (run_id,)).fetchall()
    assert leader["status"] == "cancelled"
    assert [(m["agent_name"], m["status"]) for m in members] == [("calculator", "cancelled")]
    # the member's aborted call is billed (estimated) and counted in the turn's cost
    member_rows = db_conn.execute("SELECT * FROM chat_events WHERE run_id = %s AND role = 'assistant'",
                                  (members[0]["id"],)).fetchall()
    assert any(r["usage_estimated"] and r["cost_usd"] > 0 for r in member_rows)
    assert Decimal(events[-1]["data"]["cost"]["usd"]) == sum(r["cost_usd"] for r in session_rows(db_conn, sid))
    time.sleep(0.5)
    assert len(standin.requests()) == n_requests  # neither the member nor the leader called the model again
