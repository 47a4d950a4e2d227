"""How amounts are written for clients (``chatcore.wire.amounts``): plain decimal strings, never an
exponent, in response bodies (``schemas.DecimalString``), the turn's events (``wire.sse``, the final
event of ``turns.outcome``) and the spend report. Pure: no database."""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal

import pytest
from pydantic import ValidationError

from chatcore.money.prices import TokenUsage
from chatcore.turns.outcome import TurnOutcome
from chatcore.wire import sse
from chatcore.wire.amounts import DECIMAL_PATTERN, decimal_string
from chatcore.wire.schemas import BudgetOut, Money, Problem

ZERO = Decimal("0E-10")  # numeric(20, 10) zero, as psycopg reads it; str() of it is "0E-10"


@pytest.mark.parametrize("value, text", [
    (ZERO, "0.0000000000"), (Decimal("0.0002918000"), "0.0002918000"), (Decimal("1E+2"), "100"),
    (Decimal("-5E-7"), "-0.0000005"), (Decimal("12.34"), "12.34"), (0, "0"), (42, "42"), ("0E-10", "0.0000000000"),
    (Decimal("123456789012.0000000001"), "123456789012.0000000001"),
])
def test_a_decimal_is_written_as_plain_digits(value, text):
    assert str(ZERO) == "0E-10"  # what this rule exists for
    assert decimal_string(value) == text and re.match(DECIMAL_PATTERN, text)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), "-inf"])
def test_a_decimal_that_is_no_amount_is_refused(value):
    with pytest.raises(ValueError):
        decimal_string(value)


def test_response_models_write_decimals_as_plain_strings_and_refuse_other_text():
    assert Money(usd=ZERO, zar=Decimal("1.8E+1")).model_dump() == {"usd": "0.0000000000", "zar": "18"}
    assert Money(usd="0E-10", zar=0).model_dump() == {"usd": "0.0000000000", "zar": "0"}
    budget = BudgetOut(month="2026-01", monthly_budget_zar=Decimal("5E+2"), spent_zar=Decimal("0.00"),
                       reserved_zar=ZERO, remaining_zar="500.00")
    assert budget.model_dump(exclude={"month", "warnings"}) == {"monthly_budget_zar": "500", "spent_zar": "0.00",
                                                    "reserved_zar": "0.0000000000", "remaining_zar": "500.00"}
    for bad in ("twelve", "1,5", "", 1.5):
        with pytest.raises(ValidationError):
            Money(usd=bad, zar="0")
    problem = Problem(type="t", title="t", status=402, code="budget-exceeded", detail="d", spent_zar=ZERO)
    assert problem.spent_zar == "0.0000000000"


def test_an_events_data_names_its_event_and_writes_decimals_plainly():
    text = sse.payload("ModelRequestCompleted", {"cost": ZERO, "nested": [{"amount": Decimal("1E-3")}]})
    data = json.loads(text)
    assert list(data)[0] == "event" and data == {"event": "ModelRequestCompleted", "cost": "0.0000000000",
                                                 "nested": [{"amount": "0.001"}]}
    # the frame's name wins over an "event" key already in the data
    assert json.loads(sse.payload("TurnCompleted", {"event": "other"}))["event"] == "TurnCompleted"
    (parsed,) = sse.parse(sse.frame(3, "TurnFailed", {"run_id": "r"}).decode())
    assert parsed == {"id": "3", "event": "TurnFailed", "data": {"event": "TurnFailed", "run_id": "r"}}


def test_a_turn_that_cost_nothing_ends_with_plain_zero_amounts():
    run = uuid.uuid4()
    outcome = TurnOutcome(session_id=uuid.uuid4(), run_id=run, status="completed", usage=TokenUsage(),
                          cost_usd=ZERO, cost_zar=ZERO, tool_errors=0, member_errors=[])
    name, data = outcome.final_event()
    assert data["cost"] == {"usd": "0.0000000000", "zar": "0.0000000000"}
    stored = TurnOutcome.from_stored(uuid.uuid4(), run, {
        "status": "cancelled", "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
        "cost_usd": ZERO, "cost_in_rands": ZERO, "error_code": None, "error_message": None})
    name, data = stored.final_event()
    assert name == "TurnCancelled" and data["cost"] == {"usd": "0.0000000000", "zar": "0.0000000000"}
    assert json.loads(sse.payload(name, data))["event"] == "TurnCancelled"


def test_the_spend_reports_csv_writes_plain_amounts(tmp_path):
    from datetime import date

    from chatcore.money import report

    day = date(2026, 1, 5)
    row = {"day": day, **{m: (ZERO if m.startswith("cost") else 0) for m in report.METRICS}}
    rep = report.Report(day, day, "day", [row], dict(row))
    path = tmp_path / "spend.csv"
    report.write_csv(rep, path)
    text = path.read_text()
    assert "E-" not in text and "0.0000000000" in text
    assert "0.00" in report.render(rep)
