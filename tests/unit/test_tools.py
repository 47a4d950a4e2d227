"""The agents' tools: the exact calculator and the unit converter (plain functions, no stack needed)."""

from __future__ import annotations

import decimal
import threading
from decimal import Decimal

import pytest

from chatcore.catalog.tools import CalculatorError, calculator, convert_units


# --------------------------------------------------------------------------- calculator


@pytest.mark.parametrize("expression, expected", [
    # exact decimal arithmetic, not binary floating point
    ("0.1 + 0.2", "0.3"),
    ("1.1 * 1.1", "1.21"),
    ("1 - 0.9", "0.1"),
    ("(1250 * 0.15) + 99.99", "287.49"),
    ("19.99 * 3", "59.97"),
    ("1.00000000000000000001 - 1", "0.00000000000000000001"),
    ("0.30000000000000000004 + 3", "3.30000000000000000004"),
    ("10 / 4", "2.5"),
    ("1 / 3", "0.3333333333333333333333333333333333"),
    ("2 / 3 * 3", "2"),  # 34 significant digits, rounded back to a whole number
    ("1e3 + 1.5E-3", "1000.0015"),
    ("1_000 * 2", "2000"),
    ("12345678901234567890123456789 + 1", "12345678901234567890123456790"),
    # precedence and associativity
    ("2 + 3 * 4", "14"),
    ("(2 + 3) * 4", "20"),
    ("10 - 4 - 3", "3"),
    ("100 / 10 / 5", "2"),
    ("-2 ** 2", "-4"),
    ("(-2) ** 2", "4"),
    ("2 ** 3 ** 2", "512"),
    ("2 * 3 ^ 2", "18"),
    ("2 ^ 10", "1024"),
    ("2 ^ -1", "0.5"),
    ("7 % 4 + 9 // 2", "7"),
    ("3 × 4 ÷ 2", "6"),
    ("+5 - -5", "10"),
    # functions and constants
    ("sqrt(16)", "4"),
    ("sqrt(2)", "1.414213562373095048801688724209698"),
    ("sqrt(0.25)", "0.5"),
    ("2 ** 0.5", "1.414213562373095048801688724209698"),
    ("abs(-3.5)", "3.5"),
    ("round(2.567, 2)", "2.57"),
    ("round(1234.5)", "1234"),
    ("pi", "3.141592653589793"),
    ("round(e, 3)", "2.718"),
    # large but sensible magnitudes are written out in full
    ("2 ** 100", "1267650600228229401496703205376"),
    ("10 ** 20", "100000000000000000000"),
    ("1e-20", "0.00000000000000000001"),
    ("1e309", "1" + "0" * 309),  # a literal Python's float would read as inf
])
def test_calculator_is_exact_and_follows_precedence(expression, expected):
    assert calculator(expression) == expected


def test_calculator_results_are_decimal_strings():
    result = calculator("1234.5678 * 1000")
    assert Decimal(result) == Decimal("1234567.8") and "E" not in result
    assert "E" not in calculator("10 ** 30") and calculator("10 ** 30") == "1" + "0" * 30


@pytest.mark.parametrize("expression", [
    "__import__('os')",
    "__import__('os').system('echo pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    "(1).__class__",
    "pi.real",
    "open('/etc/passwd')",
    "eval('1+1')",
    "exec('x=1')",
    "globals()",
    "x",
    "x + 1",
    "lambda: 1",
    "[1, 2]",
    "{'a': 1}",
    "'a' * 3",
    "b'a'",
    "True + 1",
    "None",
    "1 if 1 else 2",
    "1 < 2",
    "1 and 2",
    "1 << 2",
    "1 | 2",
    "~1",
    "not 1",
    "sqrt(x=4)",
    "round(2.5, n=1)",
    "math.sqrt(4)",
    "sqrt",
    "1j",
    "(x := 1)",
    "f'{1}'",
])
def test_calculator_refuses_names_attributes_and_calls(expression):
    with pytest.raises(CalculatorError):
        calculator(expression)


@pytest.mark.parametrize("expression", [
    "",
    "1 +",
    "2 ** ",
    "(1",
    "1 2",
    "1; 2",
    "import os",
    "1\x002",
    "1 / 0",
    "1 // 0",
    "1 % 0",
    "sqrt(-1)",
    "sqrt()",
    "sqrt(1, 2)",
    "abs()",
    "round(1.5, 100000)",
])
def test_calculator_refuses_bad_arithmetic_with_its_own_error(expression):
    with pytest.raises(CalculatorError):
        calculator(expression)


@pytest.mark.parametrize("expression", [
    "2 ** 1001",
    "2 ^ 100000",
    "10 ** 10 ** 10",
    "9 ** 9 ** 9 ** 9",
    "2 ** -1001",
    "(10 ** 999) ** 999",       # each exponent allowed, the result a million digits
    "(10 ** -999) ** 999",      # a million zeros after the point
    "((10 ** 999) ** 999) ** 999",
    "10 ** 1000 * 10 ** 1000",
    "1e1001",
    "1e999999999999",
    "1e-1001",
])
def test_calculator_refuses_huge_exponents_and_results(expression):
    with pytest.raises(CalculatorError):
        calculator(expression)


def test_calculator_exponent_limit_is_inclusive():
    assert calculator("10 ** 1000") == "1" + "0" * 1000
    assert len(calculator("9 ** 1000")) < 1100


def test_calculator_refuses_overly_long_input():
    with pytest.raises(CalculatorError, match="too long"):
        calculator("1+" * 250 + "1")  # 501 characters
    assert calculator("1+" * 249 + "1") == "250"  # 499 characters


@pytest.mark.parametrize("expression", ["-" * 499 + "1", "(" * 200 + "1" + ")" * 200, "2**" * 166 + "1"])
def test_calculator_deep_nesting_is_an_answer_or_its_own_error(expression):
    try:
        assert Decimal(calculator(expression)).is_finite()
    except CalculatorError:
        pass


def test_calculator_leaves_the_callers_decimal_context_alone():
    # runs in a fresh thread so the test sees that thread's default context
    seen = {}

    def run():
        before = decimal.getcontext().prec
        calculator("1 / 3")
        seen["before"], seen["after"] = before, decimal.getcontext().prec
        seen["third"] = Decimal(1) / Decimal(3)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen["before"] == seen["after"] == 28
    assert len(str(seen["third"])) == 30  # "0." + 28 digits


def test_calculator_error_is_a_value_error():
    # agno reports a raised ValueError back to the model as the tool's error
    assert issubclass(CalculatorError, ValueError)


# --------------------------------------------------------------------------- convert_units


@pytest.mark.parametrize("value, from_unit, to_unit, expected", [
    (1, "km", "m", "1000 m"),
    (1000, "m", "km", "1 km"),
    (1, "mi", "km", "1.6093 km"),
    (1, "in", "cm", "2.54 cm"),
    (1, "ft", "m", "0.3048 m"),
    (3, "ft", "yd", "1 yd"),
    (12, "in", "ft", "1 ft"),
    (5280, "ft", "mi", "1 mi"),
    (100, "cm", "in", "39.3701 in"),
    (1, "lb", "kg", "0.4536 kg"),
    (1, "lb", "oz", "16 oz"),
    (1, "kg", "lb", "2.2046 lb"),
    (1, "t", "kg", "1000 kg"),
    (1, "gal", "l", "3.7854 l"),
    (1, "l", "ml", "1000 ml"),
    (2.5, "KM", "M", "2500 m"),
    (1, " km ", " m ", "1000 m"),
    (0, "m", "km", "0 km"),
    (-5, "m", "cm", "-500 cm"),
    (0.1, "m", "cm", "10 cm"),
    # small results keep 4 significant digits instead of rounding to zero
    (1, "g", "t", "0.000001 t"),
    (1, "mm", "mi", "0.0000006214 mi"),
    (1, "ml", "gal", "0.0002642 gal"),
    # temperatures: an offset as well as a factor, two decimals
    (100, "C", "F", "212.00 F"),
    (212, "F", "C", "100.00 C"),
    (32, "F", "C", "0.00 C"),
    (-40, "C", "F", "-40.00 F"),
    (0, "K", "C", "-273.15 C"),
    (0, "C", "K", "273.15 K"),
    (98.6, "f", "c", "37.00 C"),
    (300, "K", "F", "80.33 F"),
    (20, "C", "C", "20.00 C"),
])
def test_convert_units(value, from_unit, to_unit, expected):
    assert convert_units(value, from_unit, to_unit) == expected


@pytest.mark.parametrize("value, from_unit, to_unit", [
    (1, "kg", "m"),
    (1, "C", "m"),
    (1, "l", "kg"),
    (1, "parsec", "m"),
    (1, "m", ""),
    (1, "__class__", "m"),
    (float("nan"), "m", "cm"),
    (float("inf"), "kg", "g"),
    ("ten", "m", "cm"),
    (True, "m", "cm"),
    (1e30, "km", "mm"),
])
def test_convert_units_refuses_with_a_value_error(value, from_unit, to_unit):
    with pytest.raises(ValueError):
        convert_units(value, from_unit, to_unit)


# --------------------------------------------------------------------------- set_reminder (an acting tool)


def test_set_reminder_needs_approval_and_its_spec_writes_the_summary():
    from chatcore.catalog.specs import needs_approval, summary_of
    from chatcore.catalog.tools import set_reminder

    assert needs_approval(set_reminder) and not needs_approval(calculator) and not needs_approval(convert_units)
    assert summary_of(set_reminder, {"text": "call mom", "time": "18:00"}) == \
        "Remind you to call mom at 18:00 (Africa/Johannesburg)"
    assert summary_of(set_reminder, {"text": " water  the plants ", "time": "7pm", "time_zone": "Europe/London"}) == \
        "Remind you to water the plants at 19:00 (Europe/London)"
    # arguments that do not fit: the card still says what would run
    assert summary_of(set_reminder, {"when": "soon"}) == "set_reminder(when='soon')"


def test_the_acting_tool_is_agnos_confirmation_and_the_others_stay_automatic():
    from agno.tools.function import Function

    from chatcore.catalog.tools import set_reminder
    from chatcore.turns.agent import agno_tool

    function = agno_tool(set_reminder)
    assert isinstance(function, Function) and function.requires_confirmation and function.name == "set_reminder"
    assert agno_tool(calculator) is calculator


@pytest.mark.parametrize("time, now, due", [
    ("18:00", "2026-12-07T14:00:00+00:00", "2026-12-07T16:00:00+00:00"),  # later today, at +02:00
    ("18:00", "2026-12-07T17:00:00+00:00", "2026-12-08T16:00:00+00:00"),  # past today: tomorrow
    ("6:30 p.m.", "2026-12-07T00:00:00+00:00", "2026-12-07T16:30:00+00:00"),
    ("12am", "2026-12-07T21:00:00+00:00", "2026-12-07T22:00:00+00:00"),
])
def test_a_reminder_is_due_the_next_time_the_clock_shows_its_time(time, now, due):
    from datetime import datetime

    from chatcore.catalog.tools import reminder_due

    assert reminder_due(time, "Africa/Johannesburg", datetime.fromisoformat(now)) == datetime.fromisoformat(due)


@pytest.mark.parametrize("time", ["25:00", "18:60", "noon", "", "13pm"])
def test_a_time_of_day_that_is_none_is_refused(time):
    from chatcore.catalog.tools import clock_time

    with pytest.raises(ValueError):
        clock_time(time)


def test_set_reminder_runs_only_for_an_approved_call():
    from chatcore.catalog.tools import set_reminder

    with pytest.raises(RuntimeError, match="approved"):
        set_reminder("call mom", "18:00")
