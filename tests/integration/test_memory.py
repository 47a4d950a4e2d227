"""The assistant remembers the user across sessions, through the served API, the real agno and
anthropic SDK and the stand-in model (which calls ``remember`` on "remember that ...", answers a
question from the recalled memories, and consolidates them deterministically). What the model was
sent is read from the stand-in's recorded requests."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from chatcore.config import get_settings


def first_request_of(standin, before: int) -> dict:
    """The body of the first model request the stand-in received after ``before`` requests."""
    return standin.requests()[before]["body"]


def sent(body: dict) -> str:
    """Everything a request showed the model: system, tools and messages, as one text."""
    return json.dumps({k: body.get(k) for k in ("system", "tools", "messages")}, ensure_ascii=False)


def new_session_request(user, standin, message: str = "Hello again", **session) -> tuple[dict, list[dict]]:
    """A new session's first turn: the first model request it made, and the turn's events."""
    sid = user.client.post("/sessions", json=session or {"agent": "assistant"}).json()["id"]
    before = len(standin.requests())
    _, events = user.turn(sid, message=message)
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    return first_request_of(standin, before), events


def memory_events(events: list[dict]) -> list[dict]:
    return [e["data"] for e in events if e["event"] == "MemoryUpdated"]


def test_a_fact_told_in_one_session_is_recalled_by_the_next_until_it_is_deleted(user, standin, db_conn):
    sid = user.new_session()
    _, events = user.turn(sid, message="Remember that I am allergic to peanuts")
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    (saved,) = memory_events(events)
    assert saved["action"] == "saved" and saved["text"] == "I am allergic to peanuts"
    assert saved["session_id"] == sid and saved["run_id"] == events[-1]["data"]["run_id"]
    # streamed right after the tool call that saved it, before the answer
    names = [e["event"] for e in events]
    assert names.index("MemoryUpdated") == names.index("ToolCallCompleted") + 1

    body, events = new_session_request(user, standin, "What am I allergic to?")
    assert "peanuts" in json.dumps(body["messages"])
    assert "peanuts" not in json.dumps(body["system"])  # after the static system prompt, not in it
    answer = "".join(e["data"].get("content") or "" for e in events if e["event"] == "RunContent")
    assert "From what I remember: I am allergic to peanuts" in answer

    listed = user.client.get("/me/memories").json()["items"]
    assert [m["text"] for m in listed] == ["I am allergic to peanuts"] and listed[0]["id"] == saved["memory_id"]
    assert listed[0]["session_id"] == sid
    assert user.client.delete(f"/me/memories/{saved['memory_id']}").status_code == 204
    body, _ = new_session_request(user, standin)
    assert "peanuts" not in sent(body)
    assert db_conn.execute("SELECT count(*) AS n FROM memories m JOIN users u ON u.id = m.user_id "
                           "WHERE u.sub = %s", (user.sub,)).fetchone()["n"] == 0
