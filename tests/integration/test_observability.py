"""A streamed turn records its metrics as CloudWatch EMF, once, with the figures of its final event
(the EMF shapes themselves: tests/unit/test_observability.py)."""

from __future__ import annotations

from decimal import Decimal

from chatcore import observability
from tests.support.metrics import emf_lines


def test_a_streamed_turn_records_its_metrics(user, standin, monkeypatch, capsys):
    monkeypatch.setattr(observability, "in_lambda", lambda: True)
    session_id = user.new_session()
    r, events = user.turn(session_id, message="What is 12 * 7?")
    assert r.status_code == 200, r.text
    final = events[-1]
    assert final["event"] == "TurnCompleted"
    data = final["data"]
    lines = [m for m in emf_lines(capsys.readouterr().out) if m.get("run_id") == data["run_id"]]
    assert len(lines) == 1
    m = lines[0]
    assert m["InputTokens"] == [float(data["usage"]["input_tokens"])]
    assert m["CacheReadTokens"] == [float(data["usage"]["cache_read_tokens"])]
    assert Decimal(str(m["CostZAR"][0])) == Decimal(data["cost"]["zar"]).normalize()
    assert m["TurnLatency"] == [float(data["duration_ms"])] and m["session_id"] == session_id
