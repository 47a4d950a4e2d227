"""A turn's thinking as the app sees it stream (``chatcore.turns.thinking``), from agno's own event
objects: our Thinking* events around it, agno's events without the text, signatures or encrypted data;
and a stored message's thinking (``chatcore.wire.thinking``)."""

from __future__ import annotations

import json

from agno.run.agent import ModelRequestCompletedEvent, RunContentEvent, ToolCallStartedEvent

from chatcore.turns.thinking import MEMBER_RESPONSE_KEYS, ThinkingStream
from chatcore.wire.thinking import reasoning_tokens, thinking_out

WHO = {"run_id": "r1", "session_id": "s1", "agent_name": "thinker", "agent_id": "thinker"}
SIGNED = {"signature": "c2lnbmF0dXJl"}


def _names(stream: ThinkingStream, *events) -> list[tuple[str, dict]]:
    return [item for event in events for item in stream.events(event)]


def test_thinking_becomes_our_events_and_agnos_carry_none_of_it():
    out = _names(ThinkingStream(redacted={"ENCRYPTED"}),
                 RunContentEvent(**WHO, reasoning_content="Multiply "),
                 RunContentEvent(**WHO, reasoning_content="first."),
                 RunContentEvent(**WHO, reasoning_content="ENCRYPTED"),
                 RunContentEvent(**WHO, model_provider_data=SIGNED),
                 RunContentEvent(**WHO, content="", model_provider_data={"content_blocks": [{"type": "thinking"}]},
                                 citations=None),
                 ModelRequestCompletedEvent(**WHO, output_tokens=9),
                 ToolCallStartedEvent(**WHO))
    assert [name for name, _ in out] == ["ThinkingStarted", "ThinkingDelta", "ThinkingDelta", "ThinkingCompleted",
                                         "ModelRequestCompleted", "ToolCallStarted"]
    assert "".join(d["text"] for n, d in out if n == "ThinkingDelta") == "Multiply first."
    assert out[3][1] == {"session_id": "s1", "run_id": "r1", "agent_name": "thinker", "redacted": True}
    assert not any(k in d for _, d in out[4:] for k in ("reasoning_content", "model_provider_data"))


def test_an_answer_ends_the_thinking_and_is_sent_as_it_came():
    out = _names(ThinkingStream(), RunContentEvent(**WHO, reasoning_content="Easy."),
                 RunContentEvent(**WHO, content="42"))
    assert [n for n, _ in out] == ["ThinkingStarted", "ThinkingDelta", "ThinkingCompleted", "RunContent"]
    assert out[2][1]["redacted"] is False and out[3][1]["content"] == "42"
    # without thinking, agno's events pass unchanged
    plain = _names(ThinkingStream(), RunContentEvent(**WHO, content="hi"), RunContentEvent(**WHO, content=""))
    assert [(n, d.get("content")) for n, d in plain] == [("RunContent", "hi"), ("RunContent", "")]


def test_a_teams_completed_event_keeps_only_each_members_answer():
    from agno.models.message import Message
    from agno.run.agent import RunOutput
    from agno.run.team import RunCompletedEvent as TeamRunCompletedEvent

    member = RunOutput(run_id="m1", agent_id="researcher", agent_name="researcher", parent_run_id="r1",
                       content="It rains.", reasoning_content="secret thought",
                       model_provider_data={"content_blocks": [{"type": "web_search_tool_result",
                                                                "content": [{"encrypted_content": "ENC"}]}]},
                       messages=[Message(role="assistant", content="It rains.",
                                         provider_data={"signature": "SIG"})])
    event = TeamRunCompletedEvent(run_id="r1", session_id="s1", team_id="newsdesk", team_name="newsdesk",
                                  content="Rain.", member_responses=[member])
    [(name, data)] = _names(ThinkingStream(), event)
    assert name == "TeamRunCompleted" and data["content"] == "Rain."
    [kept] = data["member_responses"]
    assert {k: kept[k] for k in ("run_id", "agent_name", "parent_run_id", "content")} == \
        {"run_id": "m1", "agent_name": "researcher", "parent_run_id": "r1", "content": "It rains."}
    assert set(kept) <= set(MEMBER_RESPONSE_KEYS)
    assert not any(k in json.dumps(data) for k in ("secret thought", "ENC", "SIG", "messages"))


def test_a_stored_messages_thinking_and_its_reasoning_tokens():
    parts = {"provider_data": {"content_blocks": [
        {"type": "thinking", "thinking": "x" * 40, "signature": "sig"},
        {"type": "redacted_thinking", "data": "y" * 8},
        {"type": "text", "text": "answer"}]}}
    assert [(t.text, t.redacted) for t in thinking_out(parts)] == [("x" * 40, False), (None, True)]
    assert reasoning_tokens(parts, 100) == 12 and reasoning_tokens(parts, 5) == 5
    assert thinking_out({"content": "no thinking"}) == [] and reasoning_tokens({}, 10) == 0
