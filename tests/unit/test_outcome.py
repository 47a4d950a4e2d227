"""How a turn ended, as one ``TurnOutcome`` (``chatcore.turns.outcome``): its final SSE event, the row
that finishes its run, and its metrics, for a completed turn, a failed one, one replayed from what is
stored, and one whose outcome could not be stored. Pure: no database (``store_outcome`` is exercised
through the served API in tests/integration)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from chatcore import observability
from chatcore.money.prices import TokenUsage
from chatcore.turns.outcome import MAX_ERROR_MESSAGE, RunError, TurnOutcome, usage_fields

SESSION = uuid.UUID("0190b3f4-0000-7000-8000-00000000000a")
RUN = uuid.UUID("0190b3f4-0000-7000-8000-00000000000b")
USAGE = TokenUsage(input_tokens=1200, output_tokens=800, cache_read_tokens=30000, cache_write_tokens=5000)
TOKENS = {"input_tokens": 1200, "output_tokens": 800, "cache_read_tokens": 30000, "cache_write_tokens": 5000}
USD, ZAR = Decimal("0.0433500000"), Decimal("0.7803000000")  # 1 USD = 18 ZAR


def completed(**kw) -> TurnOutcome:
    return TurnOutcome(**{"session_id": SESSION, "run_id": RUN, "status": "completed", "usage": USAGE,
                          "cost_usd": USD, "cost_zar": ZAR, "tool_errors": 0, "member_errors": [],
                          "duration_ms": 1234, **kw})


def stored_row(**kw) -> dict:
    return {"status": "completed", "input_tokens": 1200, "output_tokens": 800, "cache_read_tokens": 30000,
            "cache_write_tokens": 5000, "cost_usd": USD, "cost_in_rands": ZAR, "error_code": None,
            "error_message": None, **kw}


# --------------------------------------------------------------------------- the final event


def test_a_completed_turn_ends_with_turn_completed_and_its_figures():
    name, data = completed().final_event()
    assert name == "TurnCompleted"
    assert set(data) == {"session_id", "run_id", "usage", "cost", "tool_errors", "member_errors", "duration_ms"}
    assert (data["session_id"], data["run_id"]) == (str(SESSION), str(RUN))
    assert {k: data["usage"][k] for k in TOKENS} == TOKENS and data["usage"] == usage_fields(USAGE)
    assert data["cost"] == {"usd": "0.0433500000", "zar": "0.7803000000"}  # decimal strings, never floats
    assert (data["tool_errors"], data["member_errors"], data["duration_ms"]) == (0, [], 1234)
    json.dumps(data)  # what the SSE frame carries


def test_a_completed_turn_with_member_errors_reports_them_and_no_error():
    members = [{"run_id": "m-1", "agent_name": "calculator", "code": "model-error", "message": "boom"}]
    outcome = completed(tool_errors=2, member_errors=members, note=RunError("member-error", "1 member run(s) failed"))
    name, data = outcome.final_event()
    assert name == "TurnCompleted" and "error" not in data
    assert data["member_errors"] == members and data["tool_errors"] == 2


def test_a_failed_turn_ends_with_turn_failed_and_its_error_and_charges():
    outcome = completed(status="failed", error=RunError("model-error:overloaded_error", "Overloaded"), tool_errors=1)
    name, data = outcome.final_event()
    assert name == "TurnFailed" == outcome.event_name
    assert data["error"] == {"code": "model-error:overloaded_error", "message": "Overloaded", "retryable": False}
    assert "tool_errors" not in data  # a failed turn reports its error, not its tool errors
    assert data["cost"] == {"usd": str(USD), "zar": str(ZAR)} and data["usage"] == usage_fields(USAGE)  # still billed


def test_a_replayed_completed_turn_is_answered_from_its_stored_run():
    outcome = TurnOutcome.from_stored(SESSION, RUN, stored_row())
    assert outcome.replayed and outcome.status == "completed" and outcome.error is None
    assert outcome.usage == USAGE and (outcome.cost_usd, outcome.cost_zar) == (USD, ZAR)
    name, data = outcome.final_event()
    assert name == "TurnCompleted"
    assert data == {"session_id": str(SESSION), "run_id": str(RUN), "usage": usage_fields(USAGE),
                    "cost": {"usd": str(USD), "zar": str(ZAR)}, "replayed": True}


@pytest.mark.parametrize("stored_message, message", [("prompt is too long", "prompt is too long"), (None, "")])
def test_a_replayed_failed_turn_repeats_its_stored_error(stored_message, message):
    outcome = TurnOutcome.from_stored(SESSION, RUN, stored_row(status="failed", error_code="model-error",
                                                               error_message=stored_message))
    name, data = outcome.final_event()
    assert name == "TurnFailed" and data["replayed"] is True
    assert data["error"] == {"code": "model-error", "message": message, "retryable": False}


def test_a_replayed_completed_turn_with_a_note_is_not_an_error():
    outcome = TurnOutcome.from_stored(SESSION, RUN, stored_row(error_code="tool-error", error_message="1 tool call(s) failed"))
    assert outcome.error is None and "error" not in outcome.final_event()[1]


def test_an_outcome_that_could_not_be_stored_reports_no_usage_or_cost():
    outcome = TurnOutcome(session_id=SESSION, run_id=RUN, status="failed",
                          error=RunError("storage-error", "could not store the turn: OperationalError"))
    outcome.usage = None  # what was billed could not be stored
    outcome.duration_ms = 87
    name, data = outcome.final_event()
    assert name == "TurnFailed"
    assert data == {"session_id": str(SESSION), "run_id": str(RUN), "duration_ms": 87,
                    "error": {"code": "storage-error", "message": "could not store the turn: OperationalError",
                                    "retryable": True}}
    # its run row still has every column: zero tokens, zero cost
    row = outcome.run_row()
    assert {k: row[k] for k in TOKENS} == dict.fromkeys(TOKENS, 0)
    assert (row["cost_usd"], row["cost_in_rands"], row["status"], row["error_code"]) == (0, 0, "failed", "storage-error")


def test_a_new_outcome_starts_at_zero():
    outcome = TurnOutcome(session_id=SESSION, run_id=RUN, status="completed")
    assert outcome.usage == TokenUsage() and outcome.cost_usd == outcome.cost_zar == Decimal(0)
    name, data = outcome.final_event()
    assert name == "TurnCompleted" and set(data) == {"session_id", "run_id", "usage", "cost"}
    assert data["cost"] == {"usd": "0", "zar": "0"}


# --------------------------------------------------------------------------- the run row


def test_the_run_row_of_a_completed_turn():
    row = completed(client_disconnected=True).run_row()
    assert row["id"] == RUN and row["status"] == "completed" and row["client_disconnected"] is True
    assert (row["error_code"], row["error_message"]) == (None, None)
    assert {k: row[k] for k in TOKENS} == TOKENS
    assert (row["cost_usd"], row["cost_in_rands"]) == (USD, ZAR)


def test_the_run_row_records_the_error_of_a_failed_turn_or_the_note_of_a_completed_one():
    failed = completed(status="failed", error=RunError("model-error", "boom"), note=RunError("tool-error", "ignored"))
    assert (failed.run_row()["error_code"], failed.run_row()["error_message"]) == ("model-error", "boom")
    noted = completed(note=RunError("tool-error", "2 tool call(s) failed"))
    row = noted.run_row()
    assert (row["status"], row["error_code"], row["error_message"]) == ("completed", "tool-error", "2 tool call(s) failed")


def test_the_run_rows_error_message_is_cut_at_2000_characters():
    assert MAX_ERROR_MESSAGE == 2000
    long = "x" * 1999 + "é" + "y" * 3000
    row = completed(status="failed", error=RunError("model-error", long)).run_row()
    assert row["error_message"] == long[:2000] and len(row["error_message"]) == 2000
    exact = "z" * 2000
    assert completed(status="failed", error=RunError("model-error", exact)).run_row()["error_message"] == exact
    # the final event keeps the whole message: only the stored column is bounded
    assert completed(status="failed", error=RunError("model-error", long)).final_event()[1]["error"]["message"] == long


# --------------------------------------------------------------------------- metrics


def test_the_metrics_are_the_final_event_with_its_name():
    outcome = completed()
    name, data = outcome.final_event()
    assert outcome.metrics() == {"event": name, **data}
    failed = completed(status="failed", error=RunError("model-error", "boom"))
    assert failed.metrics()["event"] == "TurnFailed" and failed.metrics()["error"]["code"] == "model-error"


def test_the_metrics_feed_the_emf_record(monkeypatch, capsys):
    monkeypatch.setattr(observability, "in_lambda", lambda: True)
    observability.record_turn(completed().metrics())
    observability.record_turn(completed(status="failed", error=RunError("model-error:x", "boom")).metrics())
    ok, failed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert (ok["InputTokens"], ok["CacheWriteTokens"], ok["TurnLatency"], ok["TurnsFailed"]) == (
        [1200.0], [5000.0], [1234.0], [0.0])
    assert Decimal(str(ok["CostZAR"][0])) == ZAR and ok["run_id"] == str(RUN)
    assert failed["TurnsFailed"] == [1.0] and failed["error_code"] == "model-error:x"
