"""Extended thinking (issue 26): an agent that thinks (``thinker``) streams its reasoning, stores every
thinking block byte-exact with its signature (redacted ones too) and replays them exactly in its tool
loops, in an approval's continuation and after a reload, to a stand-in that refuses a request whose
current tool loop's thinking was changed or dropped; reasoning tokens are stored per row and priced
as output."""

from __future__ import annotations

import json
import os
from decimal import Decimal

from chatcore.wire import sse
from tests.support.model_requests import accepted, thinking_blocks

QUESTION = "What is 1.5 * 12 in kilometres to miles? Then remind me to leave at 18:00"


def test_thinking_three_tool_calls_a_continuation_a_reload_and_a_fourth_turn(user, standin, db_conn, tmp_path):
    from tests.support.serve_process import instance_process
    from tests.support.users import User

    session_id = user.new_session(agent="thinker")
    standin.script([
        {"tool_use": {"name": "calculator", "input": {"expression": "1.5 * 12"}}, "thinking": "First the product."},
        {"tool_use": {"name": "convert_units", "input": {"value": 18, "from_unit": "km", "to_unit": "mi"}},
         "thinking": "Now the conversion.", "redacted_thinking": True},
        {"tool_use": {"name": "set_reminder", "input": {"text": "leave", "time": "18:00"}}, "thinking": "A reminder."},
        {"text": "18 km is about 11.18 miles; your reminder is set.", "thinking": "All three are done."},
    ])
    r, events = user.turn(session_id, message=QUESTION)
    assert r.status_code == 200, r.text
    names = [e["event"] for e in events]
    assert names[-1] == "TurnPaused", names
    # the reasoning is streamed: a start, its text, an end, before each call's tool call
    assert names.count("ThinkingStarted") == 3 and names.count("ThinkingCompleted") == 3, names
    for start in (i for i, n in enumerate(names) if n == "ThinkingStarted"):
        end = names.index("ThinkingCompleted", start)
        between = [e for e in events[start + 1:end] if e["event"] != "ThinkingDelta"]
        assert all(e["event"] == "RunContent" and not e["data"].get("content") for e in between), names
        assert names[end + 1] == "ModelRequestCompleted", names
    streamed = "".join(e["data"]["text"] for e in events if e["event"] == "ThinkingDelta")
    assert streamed == "First the product.Now the conversion.A reminder."
    assert [e["data"]["redacted"] for e in events if e["event"] == "ThinkingCompleted"] == [False, True, False]
    # no signature, no encrypted data and no thinking text in agno's own events
    assert not any(key in json.dumps(e["data"]) for e in events if not e["event"].startswith("Thinking")
                   for key in ("signature", "redacted_reasoning_content", "First the product"))

    paused = events[-1]["data"]
    [call] = paused["pending"]
    more = user.client.post(f"/sessions/{session_id}/turns/{paused['run_id']}/approvals",
                            json={"decisions": [{"tool_call_id": call["tool_call_id"], "approved": True}]})
    assert more.status_code == 200, more.text
    assert sse.parse(more.text)[-1]["event"] == "TurnCompleted"

    requests = accepted(standin)
    assert len(requests) == 4
    sent = [b for r in requests for b in (r["response"]["content"] or []) if b["type"] in ("thinking", "redacted_thinking")]
    # the continuation replays the whole tool loop's thinking, exactly as the model sent it
    assert thinking_blocks(requests[3]["body"]) == sent[:4]

    # the rows: every block stored byte-exact with its signature; reasoning tokens priced as output
    rows = db_conn.execute("SELECT message_parts, output_tokens, reasoning_tokens, cost_usd FROM chat_events "
                           "WHERE session_id = %s AND role = 'assistant' ORDER BY id", (session_id,)).fetchall()
    stored = [b for row in rows for b in row["message_parts"]["provider_data"]["content_blocks"]
              if b["type"] in ("thinking", "redacted_thinking")]
    assert stored == sent
    assert all(0 < row["reasoning_tokens"] <= row["output_tokens"] and row["cost_usd"] > 0 for row in rows)
    assert [row["output_tokens"] for row in rows] == [r["response"]["usage"]["output_tokens"] for r in requests]

    # a reload: the app's history (thinking only on request), then a fourth turn on another instance
    plain = user.client.get(f"/sessions/{session_id}/messages").json()["items"]
    assert all(m.get("thinking") is None for m in plain)
    shown = user.client.get(f"/sessions/{session_id}/messages", params={"include": "thinking"}).json()["items"]
    thoughts = [t for m in shown for t in m.get("thinking") or []]
    assert [t["text"] for t in thoughts if not t["redacted"]] == [
        "First the product.", "Now the conversion.", "A reminder.", "All three are done."]
    assert sum(t["redacted"] for t in thoughts) == 1
    assert all(m["usage"]["reasoning_tokens"] > 0 for m in shown if m["role"] == "assistant")

    instance = instance_process(dict(os.environ), tmp_path / "reloaded.log")
    url, process = next(instance)
    try:
        standin.script([{"tool_use": {"name": "calculator", "input": {"expression": "11.18 * 2"}}},
                        {"text": "About 22.37 miles there and back."}])
        r, fourth = User(url, sub=user.sub).turn(session_id, message="And there and back?")
        assert r.status_code == 200 and fourth[-1]["event"] == "TurnCompleted", r.text
    finally:
        process.terminate()
        next(instance, None)
    requests = accepted(standin)
    assert len(requests) == 6
    later = [b for r in requests[4:] for b in r["response"]["content"] if b["type"] == "thinking"]
    # every earlier turn's thinking is sent back unchanged, then the fourth turn's own tool loop
    assert thinking_blocks(requests[5]["body"]) == [*thinking_blocks(requests[3]["body"]),
                                                     *[b for b in requests[3]["response"]["content"] if b["type"] == "thinking"],
                                                     later[0]]
    total = db_conn.execute("SELECT sum(reasoning_tokens) AS r, sum(output_tokens) AS o FROM chat_events "
                            "WHERE session_id = %s", (session_id,)).fetchone()
    assert 0 < total["r"] < total["o"]
