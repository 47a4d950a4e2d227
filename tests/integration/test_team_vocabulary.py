"""A team with Claude's whole vocabulary (``newsdesk``: a leader that thinks, a member that searches the
web, a member that thinks): the leader's signed thinking is replayed exactly in its delegation's tool
loop and in later turns, the member's search results and citations reach the app with the team run
named, and every search is counted and priced in the turn's total; a stand-in that checks signatures,
search results and citations accepts every request."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.support.model_requests import accepted, thinking_blocks

QUESTION = "Please search the web for the Cape Town water restrictions"


def test_a_thinking_leader_delegates_a_search_and_the_next_turn_replays_both(user, standin, db_conn):
    r = user.client.post("/sessions", json={"team": "newsdesk"})
    assert r.status_code == 201, r.text
    session_id = r.json()["id"]
    r, events = user.turn(session_id, message=QUESTION)
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", [e["event"] for e in events]
    run_id = events[-1]["data"]["run_id"]
    requests = accepted(standin)
    leader_calls = [q for q in requests if q["body"].get("thinking")]
    member_calls = [q for q in requests if any(t.get("type") == "web_search_20250305" for t in q["body"].get("tools", []))]
    assert len(leader_calls) == 2 and len(member_calls) == 1, [q["body"].get("system", "")[:60] for q in requests]
    # the leader's thinking before its delegation is sent back unchanged in the same tool loop
    sent = [b for b in leader_calls[0]["response"]["content"] if b["type"] == "thinking"]
    assert sent and thinking_blocks(leader_calls[1]["body"]) == sent

    # the stream: the leader's reasoning, the member's sources (named with the team run), the searches
    names = [e["event"] for e in events]
    assert names.count("ThinkingStarted") == 2 and names.count("ThinkingCompleted") == 2, names
    [cited] = [e["data"] for e in events if e["event"] == "Citations"]
    assert cited["agent_name"] == "researcher" and cited["parent_run_id"] == run_id and cited["citations"]
    leaks = [(e["event"], k, json.dumps(e["data"])[:3000]) for e in events if not e["event"].startswith("Thinking")
             for k in ("signature", "encrypted_content", "encrypted_index") if k in json.dumps(e["data"])]
    assert not leaks, leaks
    final = events[-1]["data"]
    assert final["usage"]["web_searches"] == 1

    # stored: the member's row has the search (priced), the leader's rows their reasoning tokens
    rows = db_conn.execute("SELECT ce.agent_name, ce.web_searches, ce.web_search_cost_usd, ce.reasoning_tokens, "
                           "ce.cost_usd, r.parent_run_id FROM chat_events ce JOIN runs r ON r.id = ce.run_id "
                           "WHERE ce.session_id = %s AND ce.role = 'assistant'", (session_id,)).fetchall()
    searched = [row for row in rows if row["web_searches"]]
    assert [(row["agent_name"], row["web_searches"], row["web_search_cost_usd"]) for row in searched] == \
        [("researcher", 1, Decimal("0.01"))]
    assert str(searched[0]["parent_run_id"]) == run_id
    assert sum(row["reasoning_tokens"] or 0 for row in rows if row["parent_run_id"] is None) > 0
    assert Decimal(final["cost"]["usd"]) == sum(row["cost_usd"] for row in rows)
    usage = user.client.get("/usage").json()
    assert usage["totals"]["web_searches"] == 1

    # the next turn replays the leader's thinking and the member's search as they came
    standin.reset()
    r, events = user.turn(session_id, message="Thanks. How long will they last?")
    assert events[-1]["event"] == "TurnCompleted", [e["event"] for e in events]
    first = accepted(standin)[0]["body"]
    text = json.dumps(first["messages"])
    assert "Cape Town water restrictions" in text
    items = user.client.get(f"/sessions/{session_id}/messages", params={"members": "true"}).json()["items"]
    assert any(m["citations"] for m in items if m["agent_name"] == "researcher")
