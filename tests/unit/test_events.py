"""The registry of a turn's events (``chatcore.wire.events``): one model per event, joined by being
declared; the final events the turn's outcome makes are its own; an event that is not what the API
documents is logged and still sent. (test_wire_format checks every event a real turn sends.)"""

from __future__ import annotations

import json
import logging
from typing import Literal

import pytest

from chatcore.turns.outcome import FINAL_EVENTS
from chatcore.wire import events, sse


def test_every_event_has_one_model_named_by_its_event_member():
    names = events.event_names()
    assert len(names) == len(set(names)) == len(events.EVENTS) >= 25
    assert all(events.model_of(name).model_fields["event"].annotation == Literal[name] for name in names)
    assert set(FINAL_EVENTS.values()) <= set(names)  # the outcome's final events are the registry's
    for name in FINAL_EVENTS.values():
        assert events.model_of(name).model_config["extra"] == "forbid"  # ours: exactly what is documented


def test_the_registry_follows_agnos_own_event_names():
    from agno.run.agent import RunEvent
    from agno.run.team import TeamRunEvent

    agno_names = {e.value for e in RunEvent} | {e.value for e in TeamRunEvent}
    forwarded = {events.name_of(m) for m in events.EVENTS if issubclass(m, events._Agno)}
    assert forwarded <= agno_names, forwarded - agno_names
    # the rest are our own (the final events, MemoryUpdated, ...): none shadows one of agno's
    ours = set(events.event_names()) - forwarded
    assert set(FINAL_EVENTS.values()) | {"MemoryUpdated"} <= ours and not ours & agno_names, ours


def test_an_event_joins_the_registry_by_being_declared():
    class Pondered(events.TurnEventData):
        event: Literal["Pondered"]
        thought: str

    try:
        assert events.EVENTS[-1] is Pondered and events.model_of("Pondered") is Pondered
        assert sse.check("Pondered", json.dumps({"event": "Pondered", "thought": "hm"})) is None
        with pytest.raises(TypeError, match="two events are called Pondered"):
            class Again(events.TurnEventData):
                event: Literal["Pondered"]
    finally:
        events.EVENTS.remove(Pondered)
        events._BY_NAME.pop("Pondered")
    assert events.model_of("Pondered") is None


def test_an_event_off_its_model_is_logged_once_and_still_sent(caplog):
    caplog.set_level(logging.WARNING, logger="chatcore.wire.sse")
    sse._reported.discard("RunContent")
    odd = {"created_at": "yesterday", "run_id": "r", "session_id": "s", "agent_id": "a", "agent_name": "a"}
    for _ in range(2):
        text = sse.payload("RunContent", odd)
        assert json.loads(text) == {"event": "RunContent", **odd}
    assert [r.getMessage()[:60] for r in caplog.records] == [
        "the RunContent event is not what the API documents (sent any"]
    assert sse.check("NoSuchEvent", "{}") == "no such event in chatcore.wire.events"
    good = {**odd, "created_at": 1, "content": "hi", "something_agno_adds": [1]}
    assert sse.check("RunContent", sse.payload("RunContent", good)) is None  # agno may add members


def test_a_final_event_is_exactly_its_model():
    assert sse.check("TurnCompleted", json.dumps({"event": "TurnCompleted", "session_id": "s", "run_id": "r"})) is None
    refused = sse.check("TurnCompleted", json.dumps({"event": "TurnCompleted", "session_id": "s", "run_id": "r",
                                                     "surprise": 1}))
    assert refused and "surprise" in refused
    assert "error" in sse.check("TurnFailed", json.dumps({"event": "TurnFailed", "session_id": "s", "run_id": "r"}))


def test_each_event_shape_is_checked_once_and_an_off_model_one_is_still_logged(caplog):
    """``payload`` checks an event against its model once per process for each set of members (a
    pydantic validation per event was a third of the frames' cost); an event whose data its model
    refuses is logged (once per name) and still sent, and never counted as conforming."""
    class Mulled(events.TurnEventData):
        event: Literal["Mulled"]
        times: int

    try:
        good = {"times": 2}
        assert json.loads(sse.payload("Mulled", good)) == {"event": "Mulled", "times": 2}
        assert ("Mulled", frozenset(good)) in sse._conforming
        with caplog.at_level(logging.WARNING, logger="chatcore.wire.sse"):
            text = sse.payload("Mulled", {"times": "many", "why": "x"})  # another shape: checked, refused
        assert json.loads(text)["times"] == "many"  # sent all the same
        assert "the Mulled event is not what the API documents" in caplog.text
        assert ("Mulled", frozenset({"times", "why"})) not in sse._conforming
    finally:
        events.EVENTS.remove(Mulled)
        events._BY_NAME.pop("Mulled", None)
        sse._reported.discard("Mulled")
        sse._conforming.discard(("Mulled", frozenset({"times"})))
