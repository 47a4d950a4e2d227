"""What a user spent over a range of UTC days: the one shape of a user's usage, answered by
GET /usage and written into the export's ``account.json``.

``{"from", "to", "totals", "by_day", "by_agent", "budget", "plan"}``: tokens as integers, each ``cost`` as
``{"usd", "zar"}`` in ``Decimal`` (written as decimal strings by whoever serialises it), days as
``YYYY-MM-DD``, ``budget`` this month's spend against the user's monthly budget (None without one),
``plan`` the user's plan and what is left of its limits (``chatcore.money.plans``).
The rows come from ``chatcore.store.usage.user_usage`` (stored calls, the kept usage of deleted
sessions included).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from chatcore.days import day_start
from chatcore.config import get_settings
from chatcore.money.budgets import budget_status
from chatcore.money.plans import user_plan
from chatcore.money.prices import TOKEN_COUNTS
from chatcore.store import usage


def usage_statement(conn: psycopg.Connection, sub: str, start: date, end: date, *,
                    user_id: UUID | None = None) -> dict[str, Any]:
    """The user's usage of the UTC days ``start`` to ``end`` (inclusive)."""
    found = usage.user_usage(conn, sub, day_start(start), day_start(end + timedelta(days=1)))
    user_id = user_id or usage.user_id(conn, sub)
    by_day, turns = found["by_day"], found["turns"]
    return {
        "from": start.isoformat(), "to": end.isoformat(),
        "totals": {**{k: sum(int(r[k] or 0) for r in by_day) for k in TOKEN_COUNTS},
                   "cost": cost(sum((r["cost_usd"] for r in by_day), Decimal(0)),
                                sum((r["cost_in_rands"] for r in by_day), Decimal(0))),
                   "web_searches": sum(int(r["web_searches"] or 0) for r in by_day),
                   "web_search_cost": cost(sum((r["web_search_cost_usd"] or Decimal(0) for r in by_day), Decimal(0)),
                                           sum((r["web_search_cost_in_rands"] or Decimal(0) for r in by_day), Decimal(0))),
                   "turns": turns["turns"], "failed_turns": turns["failed_turns"]},
        "by_day": [{"day": r["day"].isoformat(), **usage_row(r)} for r in by_day],
        "by_agent": [{"kind": r["kind"], "name": r["name"], **usage_row(r)} for r in found["by_agent"]],
        "budget": budget_status(conn, user_id) if user_id else None,
        "plan": user_plan(conn, user_id, get_settings().stale_turn_seconds) if user_id else None,
    }


def usage_row(r: dict[str, Any]) -> dict[str, Any]:
    """A row's token counts and cost (a stored row of calls, a day, an agent), and its web searches
    with their part of the cost."""
    return {**token_counts(r), "cost": cost(r["cost_usd"] or Decimal(0), r["cost_in_rands"] or Decimal(0)),
            "web_searches": int(r.get("web_searches") or 0),
            "web_search_cost": cost(r.get("web_search_cost_usd") or Decimal(0), r.get("web_search_cost_in_rands") or Decimal(0))}


def token_counts(r: dict[str, Any]) -> dict[str, int]:
    return {k: int(r[k] or 0) for k in TOKEN_COUNTS}


def cost(usd: Decimal, zar: Decimal) -> dict[str, Decimal]:
    return {"usd": usd, "zar": zar}
