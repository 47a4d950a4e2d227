"""Tools the agents call. They run offline: no network, no secrets."""

from __future__ import annotations

import ast
import math
import operator
import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal, DecimalException, localcontext
from uuid import UUID

from chatcore.catalog.specs import requires_approval

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": lambda x: x.sqrt(), "abs": abs, "round": lambda x, n=Decimal(0): round(x, int(n))}
_MAX_EXPONENT = 1000


class CalculatorError(ValueError):
    """The expression is not arithmetic the calculator accepts."""


def _evaluate(node: ast.AST, source: str) -> Decimal:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, source)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        if isinstance(node.value, int):
            return Decimal(node.value)
        # a float literal is read from its text: Python's float would round 1.00000000000000000001 to 1.0
        return Decimal(ast.get_source_segment(source, node))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, source), _evaluate(node.right, source)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise CalculatorError("exponent too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, source))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords):
        return Decimal(_FUNCTIONS[node.func.id](*[_evaluate(a, source) for a in node.args]))
    if isinstance(node, ast.Name) and node.id in ("pi", "e"):
        return Decimal(str(getattr(math, node.id)))
    raise CalculatorError(f"unsupported element: {ast.dump(node)[:60]}")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly (decimal arithmetic).

    Supports + - * / // % ** (or ^), parentheses, sqrt(x), abs(x), round(x, n), pi and e.

    Args:
        expression: The expression to evaluate, for example "(1250 * 0.15) + 99.99".

    Returns:
        The result as a decimal string.
    """
    if len(expression) > 500:
        raise CalculatorError("expression too long (500 characters at most)")
    source = expression.replace("^", "**").replace("×", "*").replace("÷", "/")
    # a local context: the caller's thread keeps its own decimal precision
    with localcontext(Context(prec=34)):
        try:
            result = _evaluate(ast.parse(source, mode="eval"), source)
        except (SyntaxError, DecimalException, ZeroDivisionError, TypeError) as e:
            raise CalculatorError(f"cannot evaluate {expression!r}: {e.__class__.__name__}") from e
        # (10**999)**999 is a million digits: refuse results that cannot be written out sensibly
        if not result.is_finite() or (result and abs(result.adjusted()) > _MAX_EXPONENT):
            raise CalculatorError(f"the result of {expression!r} is out of range")
        text = format(result.normalize(), "f") if result == result.to_integral() else format(result, "f")
    return text


_LENGTH = {"mm": Decimal("0.001"), "cm": Decimal("0.01"), "m": Decimal(1), "km": Decimal(1000),
           "in": Decimal("0.0254"), "ft": Decimal("0.3048"), "yd": Decimal("0.9144"), "mi": Decimal("1609.344")}
_MASS = {"g": Decimal("0.001"), "kg": Decimal(1), "t": Decimal(1000), "oz": Decimal("0.028349523125"),
         "lb": Decimal("0.45359237")}
_VOLUME = {"ml": Decimal("0.001"), "l": Decimal(1), "cup": Decimal("0.25"), "gal": Decimal("3.785411784")}


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units of length, mass, volume or temperature.

    Args:
        value: The quantity to convert.
        from_unit: One of mm, cm, m, km, in, ft, yd, mi, g, kg, t, oz, lb, ml, l, cup, gal, C, F, K.
        to_unit: The unit to convert to, of the same kind.

    Returns:
        The converted quantity with its unit.
    """
    try:
        amount = Decimal(str(value))
    except DecimalException as e:
        raise ValueError(f"{value!r} is not a number") from e
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    f, t = from_unit.strip(), to_unit.strip()
    temps = {"C", "F", "K"}
    try:
        if f.upper() in temps and t.upper() in temps:
            f, t = f.upper(), t.upper()
            celsius = {"C": amount, "F": (amount - 32) * 5 / 9, "K": amount - Decimal("273.15")}[f]
            out = {"C": celsius, "F": celsius * 9 / 5 + 32, "K": celsius + Decimal("273.15")}[t]
            return f"{out.quantize(Decimal('0.01'))} {t}"
        for table in (_LENGTH, _MASS, _VOLUME):
            if f.lower() in table and t.lower() in table:
                out = amount * table[f.lower()] / table[t.lower()]
                # 4 decimals, but at least 4 significant digits: 1 g is 0.000001 t, not 0 t
                places = max(4, 3 - out.adjusted()) if out else 4
                return f"{out.quantize(Decimal(1).scaleb(-places)).normalize():f} {t.lower()}"
    except DecimalException as e:  # a result too large to write with that many decimals
        raise ValueError(f"{value!r} {from_unit} is out of range for a conversion to {to_unit}") from e
    raise ValueError(f"cannot convert {from_unit!r} to {to_unit!r}")


# ---- tools that act: each needs the user's approval (``requires_approval``) and runs only once given

DEFAULT_TIME_ZONE = "Africa/Johannesburg"
MAX_REMINDER_CHARS = 500
_TIME = re.compile(r"^\s*(?P<h>[01]?\d|2[0-3])(?::(?P<m>[0-5]\d))?\s*(?P<ampm>[ap]\.?m\.?)?\s*$", re.IGNORECASE)
# South Africa keeps one offset all year: the default zone without the system's time zone data
_FIXED_ZONES = {"Africa/Johannesburg": timezone(timedelta(hours=2)), "UTC": timezone.utc}


@dataclass(frozen=True)
class ActingCall:
    """The approved call an acting tool runs for (set by the continuation, ``chatcore.turns.approvals``):
    whose it is, where it was asked for, and the moment it runs."""

    user_id: UUID
    session_id: UUID
    run_id: UUID
    tool_call_id: str
    now: datetime


acting_call: ContextVar[ActingCall | None] = ContextVar("acting_call", default=None)


def _zone(name: str):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        if name in _FIXED_ZONES:
            return _FIXED_ZONES[name]
        raise ValueError(f"unknown time zone {name!r}") from e


def clock_time(time: str) -> tuple[int, int]:
    """Hours and minutes of a time of day: "18:00", "6:30", "6pm", "6:30 p.m."."""
    match = _TIME.match(time or "")
    if match is None:
        raise ValueError(f"not a time of day: {time!r} (use HH:MM)")
    hour, minute = int(match["h"]), int(match["m"] or 0)
    if match["ampm"]:
        if hour > 12 or hour == 0:
            raise ValueError(f"not a time of day: {time!r}")
        hour = hour % 12 + (12 if match["ampm"].lower().startswith("p") else 0)
    return hour, minute


def reminder_due(time: str, time_zone: str, now: datetime) -> datetime:
    """The next moment after ``now`` the clock shows ``time`` in ``time_zone`` (an aware datetime)."""
    hour, minute = clock_time(time)
    local_now = now.astimezone(_zone(time_zone))
    due = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return due if due > local_now else due + timedelta(days=1)


def reminder_summary(text: str, time: str, time_zone: str = DEFAULT_TIME_ZONE) -> str:
    """The approval card's line for a reminder: "Remind you to call mom at 18:00 (Africa/Johannesburg)"."""
    hour, minute = clock_time(time)
    return f"Remind you to {' '.join(str(text).split())[:200]} at {hour:02d}:{minute:02d} ({time_zone})"


@requires_approval(reminder_summary)
def set_reminder(text: str, time: str, time_zone: str = DEFAULT_TIME_ZONE) -> str:
    """Set a reminder for the user at a time of day (the next time the clock shows it). The user is asked
    to approve it first; if they decline, do not set it another way.

    Args:
        text: What to remind the user of, in their words without "remind me to", e.g. "call mom".
        time: The time of day, 24-hour HH:MM, e.g. "18:00".
        time_zone: The user's IANA time zone, e.g. "Africa/Johannesburg" (the default).

    Returns:
        The reminder set, with when it is due.
    """
    call = acting_call.get()
    if call is None:
        raise RuntimeError("set_reminder runs only once the user has approved it")
    text = " ".join(str(text).split())
    if not text or len(text) > MAX_REMINDER_CHARS:
        raise ValueError(f"a reminder's text has 1 to {MAX_REMINDER_CHARS} characters")
    due = reminder_due(time, time_zone, call.now)
    from chatcore import db
    from chatcore.store import reminders

    with db.connection() as conn:
        reminders.insert_reminder(conn, user_id=call.user_id, text=text, due_at=due, time_zone=time_zone,
                                  session_id=call.session_id, run_id=call.run_id, tool_call_id=call.tool_call_id)
    return f"Reminder set: {text}, due {due.strftime('%Y-%m-%d %H:%M')} ({time_zone})."
