"""A user's usage: the one definition of what counts, and every query built on it.

``usage_rows`` is that definition. A usage row is one priced message (tokens and cost,
by its UTC creation day), one top-level run (a turn, by its UTC start day, failed or not), or the
kept usage of a deleted session (``deleted_session_usage``, already per day). A row counts for what
its session talks to: an agent session's rows for the agent, a team session's rows (leader and
members alike) for the team, each under the model that made the call. Deleting a session moves its
usage into ``deleted_session_usage`` (``ARCHIVE_SESSION_USAGE``), so no figure changes.

Built on it: the daily rollup (``INSERT_DAYS``), ``GET /usage`` (``USAGE_BY_DAY``, ``USAGE_BY_AGENT``,
``USAGE_TURNS``), budgets (``MONTH_SPEND_OF_U``, also inside the turn's first statement) and the
spend report's reads of ``daily_costs``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from chatcore.store.plans import PLAN_OF_U

# Rows with tokens or cost (a user message, a tool result carry none of either).
_PRICED = """(ce.model_id IS NOT NULL OR ce.cost_usd <> 0 OR ce.cost_in_rands <> 0
           OR ce.input_tokens <> 0 OR ce.output_tokens <> 0
           OR ce.cache_read_tokens <> 0 OR ce.cache_write_tokens <> 0 OR ce.web_searches <> 0)"""


def usage_rows(messages_filter: str, runs_filter: str = "false", deleted_filter: str | None = None) -> str:
    """The SELECT of usage rows (day, user_id, kind, name, model_id, the four token counts, cost_usd,
    cost_in_rands, turns, failed_turns).

    The filters are SQL conditions (fixed text, values bound as parameters) on the messages ``ce``
    (the messages table, chat_events), the top-level runs ``r`` (both joined to their session
    ``s``) and, unless None, the kept usage of deleted sessions ``d``.
    """
    sql = f"""
    SELECT (ce.created_at AT TIME ZONE 'UTC')::date AS day, s.user_id,
           CASE WHEN s.team_id IS NULL THEN 'agent' ELSE 'team' END AS kind,
           coalesce(t.name, a.name) AS name, coalesce(ce.model_id, '') AS model_id,
           ce.input_tokens, ce.output_tokens, ce.cache_read_tokens, ce.cache_write_tokens,
           ce.cost_usd, ce.cost_in_rands, 0 AS turns, 0 AS failed_turns,
           ce.web_searches, ce.web_search_cost_usd, ce.web_search_cost_in_rands
    FROM chat_events ce
    JOIN sessions s ON s.id = ce.session_id
    LEFT JOIN agents a ON a.id = s.agent_id
    LEFT JOIN teams t ON t.id = s.team_id
    WHERE {messages_filter} AND {_PRICED}
    UNION ALL
    SELECT (r.started_at AT TIME ZONE 'UTC')::date, s.user_id,
           CASE WHEN s.team_id IS NULL THEN 'agent' ELSE 'team' END,
           coalesce(t.name, a.name),
           coalesce((SELECT ce.model_id FROM chat_events ce
                     WHERE ce.run_id = r.id AND ce.model_id IS NOT NULL ORDER BY ce.id LIMIT 1),
                    t.model_id, a.model_id, ''),
           0, 0, 0, 0, 0, 0, 1, (r.status = 'failed')::int, 0, 0, 0
    FROM runs r
    JOIN sessions s ON s.id = r.session_id
    LEFT JOIN agents a ON a.id = s.agent_id
    LEFT JOIN teams t ON t.id = s.team_id
    WHERE r.parent_run_id IS NULL AND {runs_filter}"""
    if deleted_filter is not None:
        sql += f"""
    UNION ALL
    SELECT d.day, d.user_id, d.kind, d.name, d.model_id, d.input_tokens, d.output_tokens,
           d.cache_read_tokens, d.cache_write_tokens, d.cost_usd, d.cost_in_rands, d.turns, d.failed_turns,
           d.web_searches, d.web_search_cost_usd, d.web_search_cost_in_rands
    FROM deleted_session_usage d
    WHERE {deleted_filter}"""
    return sql


USAGE_SUMS = """sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(cost_usd) AS cost_usd, sum(cost_in_rands) AS cost_in_rands,
       sum(turns)::int AS turns, sum(failed_turns)::int AS failed_turns,
       sum(web_searches)::int AS web_searches, sum(web_search_cost_usd) AS web_search_cost_usd,
       sum(web_search_cost_in_rands) AS web_search_cost_in_rands"""

# Rows created in [start, end) and deleted sessions' usage of those days.
_IN_RANGE = ("ce.created_at >= %(start)s AND ce.created_at < %(end)s",
             "r.started_at >= %(start)s AND r.started_at < %(end)s",
             "d.day >= (%(start)s::timestamptz AT TIME ZONE 'UTC')::date "
             "AND d.day < (%(end)s::timestamptz AT TIME ZONE 'UTC')::date")

# ---- one user (GET /usage): scoped by the caller's sub

_USER = "s.user_id = (SELECT id FROM users WHERE sub = %(sub)s)"
_USER_ROWS = usage_rows(f"{_USER} AND {_IN_RANGE[0]}", f"{_USER} AND {_IN_RANGE[1]}",
                        f"d.user_id = (SELECT id FROM users WHERE sub = %(sub)s) AND {_IN_RANGE[2]}")

USAGE_BY_DAY = f"SELECT day, {USAGE_SUMS} FROM ({_USER_ROWS}) x GROUP BY day ORDER BY day"

USAGE_BY_AGENT = f"SELECT kind, name, {USAGE_SUMS} FROM ({_USER_ROWS}) x GROUP BY kind, name ORDER BY kind, name"

USAGE_TURNS = f"SELECT coalesce(sum(turns), 0)::int AS turns, coalesce(sum(failed_turns), 0)::int AS failed_turns FROM ({_USER_ROWS}) x"

# The month's spend of user ``u`` (a SQL expression, also inside the turn's first statement): the
# cost_in_rands of the user's usage rows created in [month_start, month_end). The same sources as
# ``usage_rows``, cut to the one column it sums, so that Postgres reads the covering index
# chat_events_session_spend alone (only rows with a cost add to it); a test holds the two equal.
MONTH_SPEND_OF_U = """(
           SELECT coalesce(sum(ce.cost_in_rands), 0)
           FROM sessions s JOIN chat_events ce ON ce.session_id = s.id
           WHERE s.user_id = u.id AND ce.cost_in_rands <> 0
             AND ce.created_at >= %(month_start)s AND ce.created_at < %(month_end)s
       ) + (
           SELECT coalesce(sum(d.cost_in_rands), 0) FROM deleted_session_usage d
           WHERE d.user_id = u.id AND d.day >= (%(month_start)s::timestamptz AT TIME ZONE 'UTC')::date
             AND d.day < (%(month_end)s::timestamptz AT TIME ZONE 'UTC')::date
       )"""

# What user ``u``'s running turns have reserved against the budget (a SQL expression): a turn that
# started less than STALE_TURN_SECONDS ago holds its reservation until it is stored.
RESERVED_OF_U = """(
           SELECT coalesce(sum(r.reserved_zar), 0) FROM sessions s2 JOIN runs r ON r.session_id = s2.id
           WHERE s2.user_id = u.id AND r.status = 'running' AND r.parent_run_id IS NULL
             AND coalesce(r.resumed_at, r.started_at) >= now() - make_interval(secs => %(stale_seconds)s)
       )"""

# One round trip: the budget (the user's own, else their plan's: ``store.plans``), and only when there is one (or ``always``), the month's spend and the
# running turns' reservations.
BUDGET_AND_SPEND = f"""
SELECT b.monthly_budget_zar,
       CASE WHEN b.monthly_budget_zar IS NULL AND NOT %(always)s THEN NULL ELSE {MONTH_SPEND_OF_U} END AS spent,
       CASE WHEN b.monthly_budget_zar IS NULL AND NOT %(always)s THEN NULL ELSE {RESERVED_OF_U} END AS reserved
FROM users u
LEFT JOIN {PLAN_OF_U} p ON true
CROSS JOIN LATERAL (SELECT coalesce(u.monthly_budget_zar, p.monthly_budget_zar) AS monthly_budget_zar) b
WHERE u.id = %(user_id)s
"""

# Taken first in a turn's transaction: the turns of one user start one at a time, so each sees the
# others' reservations (the next statement's snapshot is taken once this lock is held).
LOCK_USER = "SELECT id FROM users WHERE sub = %(sub)s FOR UPDATE"

# A turn's budget warnings (``money.budgets.claim_warnings``): each share of the budget that the
# month's spend (stored) with this turn's cost (not stored yet) reaches is claimed once a month; the
# shares this turn claimed come back.
CLAIM_BUDGET_WARNINGS = f"""
INSERT INTO budget_warnings (user_id, month, percent, monthly_budget_zar, spent_zar, run_id)
SELECT u.id, %(month)s, w.percent, %(budget)s, x.spent, %(run_id)s
FROM users u
CROSS JOIN LATERAL (SELECT {MONTH_SPEND_OF_U} + %(cost)s AS spent) x
CROSS JOIN unnest(%(percents)s::int[]) AS w(percent)
WHERE u.id = %(user_id)s AND x.spent >= %(budget)s * w.percent / 100
ON CONFLICT (user_id, month, percent) DO NOTHING
RETURNING percent, spent_zar
"""

# The warnings a turn claimed (``percents``) whose turn then could not be stored (and is not kept to be
# written later): released, so that no warning stays that no stored turn streamed and the next turn
# that crosses the share claims it again (the spend did not grow: the turn's cost was not stored).
RELEASE_BUDGET_WARNINGS = """
DELETE FROM budget_warnings WHERE run_id = %(run_id)s AND percent = ANY(%(percents)s::int[])
"""

# The same for a turn abandoned (its process ended between the claim and the store): the warnings its
# last stretch claimed (those of a stretch before an approval's pause were stored with that stretch).
RELEASE_ABANDONED_WARNINGS = """
DELETE FROM budget_warnings w USING runs r
WHERE w.run_id = %(run_id)s AND r.id = w.run_id AND w.created_at >= coalesce(r.resumed_at, r.started_at)
"""

BUDGET_WARNINGS = """
SELECT percent, monthly_budget_zar, spent_zar, created_at FROM budget_warnings
WHERE user_id = %(user_id)s AND month = %(month)s ORDER BY percent
"""

SET_BUDGET = "UPDATE users SET monthly_budget_zar = %(zar)s WHERE sub = %(sub)s RETURNING id"

USER_ID = "SELECT id FROM users WHERE sub = %(sub)s"

# ---- deleting a session keeps what it cost, per UTC day, agent or team and model, no content

ARCHIVE_SESSION_USAGE = f"""
INSERT INTO deleted_session_usage (id, user_id, session_id, day, kind, name, model_id, input_tokens,
    output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cost_in_rands, turns, failed_turns,
    web_searches, web_search_cost_usd, web_search_cost_in_rands)
SELECT gen_random_uuid(), user_id, %(session_id)s, day, kind, name, model_id,
       sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
       sum(cost_usd), sum(cost_in_rands), sum(turns), sum(failed_turns),
       sum(web_searches), sum(web_search_cost_usd), sum(web_search_cost_in_rands)
FROM ({usage_rows("ce.session_id = %(session_id)s", "r.session_id = %(session_id)s")}) x
GROUP BY user_id, day, kind, name, model_id
"""

# ---- the daily rollup (daily_costs)

# Serialises rollups (the schedule and a manual run) and re-pricing backfills (in their transaction).
LOCK_COSTS = "SELECT pg_advisory_xact_lock(7240003)"

# The rollup's statements without JIT compilation, for its transaction only (SET LOCAL: nothing stays
# on the connection, so it is safe through RDS Proxy / PgBouncer's transaction pooling). Once
# chat_events holds millions of rows the planner's cost estimates pass jit_above_cost and Postgres
# compiles the recompute's plans with LLVM at every run, which costs more than the day or two of rows
# an incremental run reads (measured: docs/benchmarks.md, "Scale: 10 million messages").
NO_JIT = "SET LOCAL jit = off"

DELETE_DAYS = "DELETE FROM daily_costs WHERE day >= %(from_day)s AND day <= %(to_day)s"

INSERT_DAYS = f"""
INSERT INTO daily_costs (day, user_id, kind, name, model_id, input_tokens, output_tokens,
                         cache_read_tokens, cache_write_tokens, cost_usd, cost_in_rands, turns, failed_turns,
                         web_searches, web_search_cost_usd, web_search_cost_in_rands)
SELECT day, user_id, kind, name, model_id,
       sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
       sum(cost_usd), sum(cost_in_rands), sum(turns), sum(failed_turns),
       sum(web_searches), sum(web_search_cost_usd), sum(web_search_cost_in_rands)
FROM ({usage_rows(*_IN_RANGE)}) x
GROUP BY day, user_id, kind, name, model_id
"""

# Days holding rows created (by UUIDv7 id) after a point in time, and turns finished since then.
TOUCHED_DAYS = """
SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date AS day FROM chat_events WHERE id >= %(id_floor)s
UNION
SELECT DISTINCT (started_at AT TIME ZONE 'UTC')::date FROM runs
WHERE parent_run_id IS NULL AND id >= %(id_floor)s
UNION
SELECT DISTINCT (started_at AT TIME ZONE 'UTC')::date FROM runs
WHERE parent_run_id IS NULL AND finished_at >= %(since)s
"""

FIRST_DAY = """
SELECT least((SELECT min(created_at) FROM chat_events),
             (SELECT min(started_at) FROM runs WHERE parent_run_id IS NULL)) AS first
"""

CLOCK = "SELECT clock_timestamp() AS now"

READ_ROLLUP_STATE = "SELECT watermark FROM rollup_state WHERE name = %(name)s FOR UPDATE"

LAST_WATERMARK = "SELECT watermark FROM rollup_state WHERE name = %(name)s"

WRITE_ROLLUP_STATE = """
INSERT INTO rollup_state (name, watermark, last_run_at, last_days)
VALUES (%(name)s, %(watermark)s, now(), %(days)s)
ON CONFLICT (name) DO UPDATE SET watermark = EXCLUDED.watermark, last_run_at = EXCLUDED.last_run_at,
    last_days = EXCLUDED.last_days
"""

# ---- the spend report: reads of daily_costs grouped by one dimension

# How the report names the usage of deleted accounts (daily_costs rows with no user).
DELETED_ACCOUNTS = "(deleted accounts)"
REPORT_METRICS = ("turns", "failed_turns", "input_tokens", "output_tokens", "cache_read_tokens",
                  "cache_write_tokens", "cost_usd", "cost_in_rands")
# The grouping columns of each dimension, as (SQL expression, CSV/column name).
REPORT_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "day": (("dc.day", "day"),),
    "agent": (("dc.kind", "kind"), ("dc.name", "name")),
    "model": (("dc.model_id", "model_id"),),
    "user": ((f"coalesce(u.sub, '{DELETED_ACCOUNTS}')", "user_sub"),),
}


def daily_costs_by(by: str, *, per_day: bool = False) -> str:
    """daily_costs of [from_day, to_day] summed by the dimension ``by`` (one of REPORT_KEYS), and by
    day too with ``per_day`` (only cost_in_rands then: the chart's series)."""
    keys = REPORT_KEYS[by]  # fixed identifiers chosen above, never user input; values are bound
    select = ", ".join(f"{expr} AS {name}" for expr, name in keys)
    group = ", ".join(expr for expr, _ in keys)
    if per_day:
        select, group = f"dc.day AS x_day, {select}", f"dc.day, {group}"
        sums = "sum(dc.cost_in_rands) AS cost_in_rands"
    else:
        sums = ", ".join(f"sum(dc.{m}) AS {m}" for m in REPORT_METRICS)
    return (f"SELECT {select}, {sums} FROM daily_costs dc LEFT JOIN users u ON u.id = dc.user_id "
            f"WHERE dc.day >= %(from_day)s AND dc.day <= %(to_day)s GROUP BY {group} ORDER BY {group}")


# ---- functions

def user_usage(conn: psycopg.Connection, sub: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The caller's usage of [start, end): ``by_day``, ``by_agent`` rows and ``turns`` totals."""
    params = {"sub": sub, "start": start, "end": end}
    with conn.cursor(row_factory=dict_row) as cur:
        by_day = cur.execute(USAGE_BY_DAY, params).fetchall()
        by_agent = cur.execute(USAGE_BY_AGENT, params).fetchall()
        turns = cur.execute(USAGE_TURNS, params).fetchone()
    return {"by_day": by_day, "by_agent": by_agent, "turns": turns}


def budget_and_spend(conn: psycopg.Connection, user_id: UUID, month_start: datetime, month_end: datetime,
                     *, always: bool = False, stale_seconds: int = 960) -> dict[str, Any] | None:
    """``{"monthly_budget_zar", "spent", "reserved"}`` of the user (spent and reserved only with a
    budget, or ``always``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(BUDGET_AND_SPEND, {"user_id": user_id, "month_start": month_start,
                                              "month_end": month_end, "always": always,
                                              "stale_seconds": stale_seconds}).fetchone()


def claim_budget_warnings(conn: psycopg.Connection, *, user_id: UUID, month_start: datetime, month_end: datetime,
                          budget: Decimal, cost: Decimal, run_id: UUID, percents: list[int]) -> list[dict[str, Any]]:
    """CLAIM_BUDGET_WARNINGS: the warnings this turn claimed (``percent``, ``spent_zar``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(CLAIM_BUDGET_WARNINGS, {
            "user_id": user_id, "month": month_start.date(), "month_start": month_start, "month_end": month_end,
            "budget": budget, "cost": cost, "run_id": run_id, "percents": percents}).fetchall()


def release_budget_warnings(conn: psycopg.Connection, run_id: UUID, percents: list[int]) -> None:
    """RELEASE_BUDGET_WARNINGS."""
    if percents:
        conn.execute(RELEASE_BUDGET_WARNINGS, {"run_id": run_id, "percents": percents})


def budget_warnings(conn: psycopg.Connection, user_id: UUID, month_start: datetime) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(BUDGET_WARNINGS, {"user_id": user_id, "month": month_start.date()}).fetchall()


def set_budget(conn: psycopg.Connection, sub: str, zar: Decimal | None) -> UUID | None:
    """Set (None: clear) the monthly budget of the user with ``sub``; their id, None if unknown."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(SET_BUDGET, {"sub": sub, "zar": zar}).fetchone()
    return None if row is None else row["id"]


def user_id(conn: psycopg.Connection, sub: str) -> UUID | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(USER_ID, {"sub": sub}).fetchone()
    return None if row is None else row["id"]
