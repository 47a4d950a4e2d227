"""Plans: what a user may do and spend, and the rate limits a turn is checked against.

    python -m chatcore.money.plans list
    python -m chatcore.money.plans define NAME [--budget-zar 500] [--turns-per-minute 5] [--turns-per-day 200]
        [--tokens-per-day 2000000] [--concurrent-turns 2] [--agents a,b] [--models m1,m2]
        [--no-thinking] [--no-web-search] [--default]
    python -m chatcore.money.plans assign --sub SUB (--plan NAME | --default)
    python -m chatcore.money.plans show --sub SUB

A plan (the ``plans`` table) names a monthly budget in rands, four rate limits (turns per minute,
turns per UTC day, tokens per UTC day, turns running at once; none: no such limit), the agents and
teams and the models it allows (none: all) and whether thinking and web search are. One plan is the
default: a user the operator put on no plan is on it. A user's own budget
(``python -m chatcore.money.budgets set``) overrides their plan's.

The limits are checked in the turn's first statement (``turns.begin``; the users row is locked
first, so turns of one user are counted one at a time and 20 at once never get past a limit): a turn
over a limit is refused with 429 ``rate-limited`` naming it, with ``Retry-After`` (when the limit
frees up), before anything is stored or any model is called. Every turn response carries the
``RateLimit-Policy`` and ``RateLimit`` headers of the IETF draft (draft-ietf-httpapi-ratelimit-headers):
one item per limit of the plan, ``q`` its quota, ``w`` its window in seconds, ``r`` what is left and
``t`` the seconds until it frees up.

What counts: a turn is a top-level run (failed or stopped ones too), by when it started; the tokens
of a day are the stored rows' input (cached or not) and output tokens, plus what running turns hold
(``runs.reserved_tokens``: their input estimate and ``max_tokens`` for each model call they may make).
A turn is refused once the day's tokens have reached the limit (the last one admitted may pass it).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from chatcore import cli
from chatcore.errors import NotInPlan, RateLimited
from chatcore.observability import record_limit_refusal
from chatcore.money.budgets import parse_budget
from chatcore.store import plans as plan_rows, usage
from chatcore.wire.amounts import decimal_string

# The concurrency limit frees up when a running turn ends: no moment is known, so a retry is offered after this.
CONCURRENT_RETRY_SECONDS = 5


@dataclass(frozen=True)
class Limit:
    """One rate limit of a plan as it stands: ``used`` of ``quota`` in a window of ``window``
    seconds (None: turns running at once), freeing up in ``reset`` seconds."""

    name: str
    quota: int
    used: int
    window: int | None
    reset: int
    unit: str | None = None  # the draft's quota unit (qu), when it is not "requests"

    @property
    def left(self) -> int:
        return max(0, self.quota - self.used)

    def policy(self) -> str:
        item = f'"{self.name}";q={self.quota}'
        if self.window is not None:
            item += f";w={self.window}"
        return item + (f';qu="{self.unit}"' if self.unit else "")

    def state(self, taken: int = 0) -> str:
        return f'"{self.name}";r={max(0, self.left - taken)};t={self.reset}'


DESCRIPTIONS = {
    "turns-per-minute": "turns a minute",
    "turns-per-day": "turns a day (UTC)",
    "tokens-per-day": "tokens a day (UTC)",
    "concurrent-turns": "turns running at once",
}


def limits_of(row: dict[str, Any]) -> list[Limit]:
    """The plan's limits as they stand, from a row with the plan's columns and ``LIMIT_COUNTS``'s."""
    now: datetime = row["db_now"]
    day_reset = _seconds(datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
                         - now)
    found = []
    if row.get("turns_per_minute") is not None:
        first = row.get("minute_first")
        reset = _seconds(first + timedelta(minutes=1) - now) if first is not None else 60
        found.append(Limit("turns-per-minute", row["turns_per_minute"], int(row["minute_turns"] or 0), 60, reset))
    if row.get("turns_per_day") is not None:
        found.append(Limit("turns-per-day", row["turns_per_day"], int(row["day_turns"] or 0), 86_400, day_reset))
    if row.get("tokens_per_day") is not None:
        used = int(row["day_tokens"] or 0) + int(row["reserved_tokens"] or 0)
        found.append(Limit("tokens-per-day", int(row["tokens_per_day"]), used, 86_400, day_reset, unit="tokens"))
    if row.get("concurrent_turns") is not None:
        found.append(Limit("concurrent-turns", row["concurrent_turns"], int(row["running_turns"] or 0), None,
                           CONCURRENT_RETRY_SECONDS, unit="concurrent-requests"))
    return found


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


def rate_limit_headers(limits: list[Limit], *, admitted: bool) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` for the plan's limits (none: no headers); ``admitted``:
    this turn started and counts (one turn less left of each turn limit)."""
    if not limits:
        return {}
    return {"RateLimit-Policy": ", ".join(limit.policy() for limit in limits),
            "RateLimit": ", ".join(limit.state(1 if admitted and limit.unit != "tokens" else 0) for limit in limits)}


def current_limit_headers(conn: psycopg.Connection, sub: str, stale_seconds: int) -> dict[str, str]:
    """The RateLimit headers of a turn answer that starts no turn and read no turn's row (a retry
    followed from the stored turn that used its uploads): the user's limits as they stand."""
    row = plan_rows.plan_status_of_sub(conn, sub, stale_seconds)
    return {} if row is None or row.get("plan_name") is None else rate_limit_headers(limits_of(row), admitted=False)


def limit_refusal(row: dict[str, Any], limits: list[Limit] | None = None) -> RateLimited | None:
    """The 429 a limit of the user's plan gives a turn now (the limit that frees up last), or None;
    ``limits``: ``limits_of(row)`` when the caller has them. Records nothing: ``check_limits`` raises
    it, a turn's estimate reports it."""
    limits = limits_of(row) if limits is None else limits
    over = [limit for limit in limits if limit.used >= limit.quota]
    if not over:
        return None
    worst = max(over, key=lambda limit: limit.reset)
    refusal = RateLimited(
        f"your plan ({row['plan_name']}) allows {worst.quota} {DESCRIPTIONS[worst.name]}; "
        f"try again in {worst.reset} s",
        retry_after=worst.reset, limit=worst.name, limit_value=worst.quota, plan=row["plan_name"])
    refusal.headers = rate_limit_headers(limits, admitted=False)
    return refusal


def check_limits(row: dict[str, Any], sub: str, limits: list[Limit] | None = None) -> dict[str, str]:
    """Raise RateLimited (429) when a limit of the user's plan is reached; else the headers of the
    turn's response (``limits``: ``limits_of(row)`` when the caller has them)."""
    limits = limits_of(row) if limits is None else limits
    refusal = limit_refusal(row, limits)
    if refusal is not None:
        record_limit_refusal(sub, refusal.extra["limit"])
        raise refusal
    return rate_limit_headers(limits, admitted=True)


def check_allowed(row: dict[str, Any], *, name: str, model_id: str, thinking: bool, web_search: bool) -> None:
    """Raise NotInPlan (403) when the user's plan does not include the session's agent or team
    ``name``, its ``model_id``, thinking or web search."""
    plan = row.get("plan_name")
    if plan is None:
        return
    if row.get("plan_agents") is not None and name not in row["plan_agents"]:
        raise NotInPlan(f"your plan ({plan}) does not include {name}", plan=plan)
    if row.get("plan_models") is not None and model_id not in row["plan_models"]:
        raise NotInPlan(f"your plan ({plan}) does not include the model {model_id} ({name} uses it)", plan=plan)
    if thinking and row.get("thinking_allowed") is False:
        raise NotInPlan(f"your plan ({plan}) does not include thinking ({name} thinks)", plan=plan)
    if web_search and row.get("web_search_allowed") is False:
        raise NotInPlan(f"your plan ({plan}) does not include web search ({name} searches the web)", plan=plan)


def plan_view(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """The user's plan as ``GET /usage`` and the export show it: its name, budget, what it allows,
    and each limit with what is left now."""
    if row is None or row.get("plan_name") is None:
        return None
    budget = row.get("monthly_budget_zar")
    return {
        "name": row["plan_name"],
        "monthly_budget_zar": None if budget is None else decimal_string(Decimal(budget)),
        "agents": row.get("agents"), "models": row.get("models"),
        "thinking_allowed": row["thinking_allowed"], "web_search_allowed": row["web_search_allowed"],
        "limits": [{"name": limit.name, "limit": limit.quota, "used": limit.used, "remaining": limit.left,
                    "window_seconds": limit.window, "reset_seconds": limit.reset} for limit in limits_of(row)],
    }


def user_plan(conn: psycopg.Connection, user_id: Any, stale_seconds: int) -> dict[str, Any] | None:
    """``plan_view`` of the user now."""
    return plan_view(plan_rows.plan_status(conn, user_id, stale_seconds))


# ---- the operator's command

def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("name at least one, or leave the option out for all")
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"{text} must be more than 0 (leave the option out for no limit)")
    return value


def define(conn: psycopg.Connection, name: str, *, budget_zar: str | None = None, turns_per_minute: str | None = None,
           turns_per_day: str | None = None, tokens_per_day: str | None = None, concurrent_turns: str | None = None,
           agents: str | None = None, models: str | None = None, thinking: bool = True, web_search: bool = True,
           default: bool = False) -> dict[str, Any]:
    """Create or replace plan ``name`` (an option left out: no such limit, all allowed)."""
    optional = {"turns_per_minute": turns_per_minute, "turns_per_day": turns_per_day,
                "tokens_per_day": tokens_per_day, "concurrent_turns": concurrent_turns}
    row = plan_rows.define_plan(
        conn, name=name, monthly_budget_zar=None if budget_zar is None else parse_budget(budget_zar),
        **{k: None if v is None else _positive(v) for k, v in optional.items()},
        agents=_names(agents), models=_names(models), thinking_allowed=thinking, web_search_allowed=web_search)
    if default:
        plan_rows.make_default(conn, name)
    return row


def assign(conn: psycopg.Connection, sub: str, plan: str | None) -> None:
    """Put user ``sub`` on ``plan`` (None: the default plan); LookupError for an unknown user or plan."""
    if plan is not None and plan_rows.get_plan(conn, plan) is None:
        raise LookupError(f"no plan named {plan!r} (python -m chatcore.money.plans list)")
    if plan_rows.set_user_plan(conn, sub, plan) is None:
        raise LookupError(f"no user with sub {sub!r} (a user exists once they have called the API)")


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (decimal_string(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, datetime) else v)
            for k, v in row.items()}


def main(argv: list[str] | None = None) -> int:
    parser = cli.argument_parser("python -m chatcore.money.plans", "Plans: budgets, rate limits, what is allowed.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every plan (JSON lines)")
    p_define = sub.add_parser("define", help="create or replace a plan (an option left out: no such limit)")
    p_define.add_argument("name")
    p_define.add_argument("--budget-zar", help="monthly budget in rands (a user's own budget overrides it)")
    for option in ("--turns-per-minute", "--turns-per-day", "--tokens-per-day", "--concurrent-turns"):
        p_define.add_argument(option)
    p_define.add_argument("--agents", help="the agents and teams allowed, comma-separated (default: all)")
    p_define.add_argument("--models", help="the model ids allowed, comma-separated (default: all)")
    p_define.add_argument("--no-thinking", action="store_true", help="agents that think are not allowed")
    p_define.add_argument("--no-web-search", action="store_true", help="agents that search the web are not allowed")
    p_define.add_argument("--default", action="store_true", help="make it the plan of users with none of their own")
    p_assign = sub.add_parser("assign", help="put a user on a plan")
    p_assign.add_argument("--sub", required=True, help="the user's Cognito sub")
    which = p_assign.add_mutually_exclusive_group(required=True)
    which.add_argument("--plan")
    which.add_argument("--default", action="store_true", help="back on the default plan")
    p_show = sub.add_parser("show", help="a user's plan and what is left of each limit (JSON)")
    p_show.add_argument("--sub", required=True)
    args = parser.parse_args(argv)

    def work(conn: psycopg.Connection) -> None:
        from chatcore.config import get_settings

        if args.command == "list":
            for row in plan_rows.list_plans(conn):
                print(json.dumps(_jsonable(row)))
            return
        if args.command == "define":
            row = define(conn, args.name, budget_zar=args.budget_zar, turns_per_minute=args.turns_per_minute,
                         turns_per_day=args.turns_per_day, tokens_per_day=args.tokens_per_day,
                         concurrent_turns=args.concurrent_turns, agents=args.agents, models=args.models,
                         thinking=not args.no_thinking, web_search=not args.no_web_search, default=args.default)
            print(json.dumps(_jsonable(plan_rows.get_plan(conn, row["name"]))))
            return
        if args.command == "assign":
            assign(conn, args.sub, None if args.default else args.plan)
        user_id = usage.user_id(conn, args.sub)
        if user_id is None:
            raise LookupError(f"no user with sub {args.sub!r} (a user exists once they have called the API)")
        print(json.dumps({"sub": args.sub, "plan": user_plan(conn, user_id, get_settings().stale_turn_seconds)}))

    return cli.run_with_connection(args, work, (ValueError, LookupError))


if __name__ == "__main__":
    sys.exit(main())
