"""Optional monthly budgets per user, in rands.

    python -m chatcore.money.budgets set --sub SUB --zar 500
    python -m chatcore.money.budgets clear --sub SUB
    python -m chatcore.money.budgets show --sub SUB

``users.monthly_budget_zar`` (NULL: no budget). This calendar month's spend is the cost in rands of
the user's usage created in the current UTC month (``chatcore.store.usage``: deleted sessions
included). A turn reserves
the most it can cost before its model call (``turns.begin``: its input estimate and ``max_tokens`` of
output for each model call it may make); it is refused (402 ``budget-exceeded``) when spend, the
reservations of the user's running turns and its own do not fit in the budget. Turn starts of one
user are serialised (the users row is locked first), so concurrent turns can never take spend past
the budget; the reservation is replaced by the real cost when the turn is stored.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import psycopg

from chatcore import cli
from chatcore.errors import BudgetExceeded
from chatcore.store import usage
from chatcore.wire.amounts import decimal_string

CENTS = Decimal("0.01")


def month_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Start of this UTC month and of the next one."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _budget_and_spend(conn: psycopg.Connection, user_id: UUID, now: datetime | None,
                      always: bool = False) -> tuple[dict | None, datetime]:
    start, end = month_bounds(now)
    return usage.budget_and_spend(conn, user_id, start, end, always=always), start


def _money(value: Decimal) -> str:
    return decimal_string(value.quantize(CENTS, rounding=ROUND_HALF_UP))


def refuse_if_over(budget: Decimal | None, spent: Decimal | None, month_start: datetime, *,
                   reserved: Decimal | None = None, reservation: Decimal = Decimal(0)) -> None:
    """Raise BudgetExceeded (402) when there is a budget and this month's spend, what the user's
    running turns have reserved, and ``reservation`` (the most this turn can cost) do not fit in it."""
    if budget is None or spent is None:
        return
    start = month_start
    reserved = reserved or Decimal(0)
    if spent >= budget or spent + reserved + reservation > budget:
        raise BudgetExceeded(
            f"this month's spend of R{_money(spent)} (and R{_money(reserved)} reserved by running turns) leaves "
            f"less than this turn may cost (up to R{_money(reservation)}) in the monthly budget of R{_money(budget)}",
            month=start.strftime("%Y-%m"), monthly_budget_zar=_money(budget), spent_zar=_money(spent),
            reserved_zar=_money(reserved), reservation_zar=_money(reservation),
        )


# The shares of a month's budget whose crossing is told once a month: a BudgetWarning event in the
# turn that crossed it and a row (``claim_warnings``), and a push (``chatcore.notify.pushes``).
WARNING_PERCENTS = (80, 100)


def warnings_due(budget: Decimal, spent_before: Decimal, cost: Decimal) -> list[int]:
    """The shares of ``budget`` a turn of ``cost`` may reach after ``spent_before`` (the spend its start
    read; other turns may have added to it since): worth claiming (``claim_warnings``)."""
    if budget <= 0:  # no turn runs under a budget of nothing: nothing to warn of
        return []
    return [p for p in WARNING_PERCENTS if spent_before + cost >= budget * p / 100]


def claim_warnings(conn: psycopg.Connection, *, user_id: UUID, budget: Decimal, spent_before: Decimal, cost: Decimal,
                   run_id: UUID, now: datetime | None = None) -> list[dict[str, Any]]:
    """The budget warnings a turn of ``cost`` crossed, claimed once a month each (two turns crossing
    at once: one of them claims it), as BudgetWarning data without the session and run; none (and no
    round trip) while the spend its start read and its cost stay under 80 %."""
    due = warnings_due(budget, spent_before, cost)
    if not due:
        return []
    start, end = month_bounds(now)
    claimed = usage.claim_budget_warnings(conn, user_id=user_id, month_start=start, month_end=end, budget=budget,
                                          cost=cost, run_id=run_id, percents=due)
    return [{"percent": row["percent"], "month": start.strftime("%Y-%m"), "monthly_budget_zar": _money(budget),
             "spent_zar": _money(row["spent_zar"])} for row in sorted(claimed, key=lambda r: r["percent"])]


def budget_status(conn: psycopg.Connection, user_id: UUID, now: datetime | None = None) -> dict[str, Any] | None:
    """``{"month", "monthly_budget_zar", "spent_zar", "reserved_zar", "remaining_zar", "warnings"}``
    (amounts as decimal strings), or None. ``reserved_zar`` is what running turns hold until they are
    stored; ``warnings`` the month's budget warnings (``{"percent", "spent_zar", "at"}``).

    Amounts are rounded to the cent for display (the check itself compares exact values);
    ``remaining_zar`` is never negative ("0.00" once the budget is reached).
    """
    row, start = _budget_and_spend(conn, user_id, now)
    if row is None or row["monthly_budget_zar"] is None:
        return None
    budget, spent, reserved = row["monthly_budget_zar"], row["spent"], row["reserved"]
    warnings = [{"percent": w["percent"], "spent_zar": _money(w["spent_zar"]),
                 "at": w["created_at"].isoformat().replace("+00:00", "Z")}
                for w in usage.budget_warnings(conn, user_id, start)]
    return {"month": start.strftime("%Y-%m"), "monthly_budget_zar": _money(budget), "spent_zar": _money(spent),
            "reserved_zar": _money(reserved), "remaining_zar": _money(max(budget - spent - reserved, Decimal(0))),
            "warnings": warnings}


def month_spend(conn: psycopg.Connection, user_id: UUID, now: datetime | None = None) -> Decimal:
    """This UTC month's spend in rands, exact, whether or not the user has a budget."""
    row, _ = _budget_and_spend(conn, user_id, now, always=True)
    return Decimal(0) if row is None else row["spent"]


def parse_budget(text: str) -> Decimal:
    """A budget in rands: a non-negative amount with at most two decimals."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"budget {text!r} is not an amount like 500 or 499.99") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"budget {text!r} must be zero or more")
    if value != value.quantize(CENTS):
        raise ValueError(f"budget {text!r} has more than two decimals (cents)")
    if value >= Decimal("1e12"):
        raise ValueError(f"budget {text!r} is too large")
    return value.quantize(CENTS)


def set_budget(conn: psycopg.Connection, sub: str, zar: Decimal | None) -> UUID:
    """Set (or with None clear) the monthly budget of the user with ``sub``; LookupError if unknown."""
    return _known(usage.set_budget(conn, sub, zar), sub)


def _known(user_id: UUID | None, sub: str) -> UUID:
    if user_id is None:
        raise LookupError(f"no user with sub {sub!r} (a user exists once they have called the API)")
    return user_id


def _user_id(conn: psycopg.Connection, sub: str) -> UUID:
    return _known(usage.user_id(conn, sub), sub)


def show(conn: psycopg.Connection, sub: str, now: datetime | None = None) -> dict[str, Any]:
    user_id = _user_id(conn, sub)
    status = budget_status(conn, user_id, now)
    if status is None:
        start, _ = month_bounds(now)
        status = {"month": start.strftime("%Y-%m"), "monthly_budget_zar": None,
                  "spent_zar": _money(month_spend(conn, user_id, now)), "remaining_zar": None}
    return {"sub": sub, **status}


def main(argv: list[str] | None = None) -> int:
    parser = cli.argument_parser("python -m chatcore.money.budgets", "Monthly budgets per user, in rands.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_set = sub.add_parser("set", help="set a user's monthly budget")
    p_set.add_argument("--sub", required=True, help="the user's Cognito sub")
    p_set.add_argument("--zar", required=True, help="the budget in rands, e.g. 500 or 499.99")
    p_clear = sub.add_parser("clear", help="remove a user's budget")
    p_clear.add_argument("--sub", required=True)
    p_show = sub.add_parser("show", help="budget and this month's spend (JSON)")
    p_show.add_argument("--sub", required=True)
    args = parser.parse_args(argv)

    def work(conn: psycopg.Connection) -> None:
        if args.command in ("set", "clear"):
            set_budget(conn, args.sub, parse_budget(args.zar) if args.command == "set" else None)
        print(json.dumps(show(conn, args.sub)))

    return cli.run_with_connection(args, work, (ValueError, LookupError))


if __name__ == "__main__":
    sys.exit(main())
