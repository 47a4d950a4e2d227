"""Paused turns and the user's decisions (``approvals``): the pending calls of a paused run, the one
conditional UPDATE that takes a paused run back to running (two decisions at once: one wins), the
continuation's read, expiry (APPROVAL_TTL) and a stop of a paused run."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from chatcore.store.rates import rate_in_effect
from chatcore.store.history import history_of
from chatcore.store.plans import PLAN_OF_U

INSERT_APPROVAL = """
INSERT INTO approvals (run_id, tool_call_id, call_run_id, agent_name, tool, arguments, summary)
VALUES (%(run_id)s, %(tool_call_id)s, %(call_run_id)s, %(agent_name)s, %(tool)s, %(arguments)s, %(summary)s)
ON CONFLICT (run_id, tool_call_id) DO NOTHING
"""

_PENDING = """(SELECT jsonb_agg(jsonb_build_object(
        'tool_call_id', ap.tool_call_id, 'tool', ap.tool, 'arguments', ap.arguments, 'summary', ap.summary,
        'agent_name', ap.agent_name, 'call_run_id', ap.call_run_id) ORDER BY ap.created_at, ap.tool_call_id)
    FROM approvals ap WHERE ap.run_id = r.id AND ap.status = 'pending')"""

# The caller's turn as a decision sees it (None: not the caller's): its status, whether its pause is
# past APPROVAL_TTL, its pending calls, what it cost so far, and what the reservation is made of
# (the user's budget, else their plan's).
READ_DECISION = f"""
SELECT r.id, r.status, r.session_id, s.user_id, r.paused_at,
       r.status = 'paused' AND r.paused_at < now() - make_interval(secs => %(ttl)s) AS expired,
       a.name AS agent_name, t.name AS team_name, {_PENDING} AS pending,
       coalesce(u.monthly_budget_zar, p.monthly_budget_zar) AS monthly_budget_zar, fx.rate AS fx_rate
FROM runs r
JOIN sessions s ON s.id = r.session_id
JOIN users u ON u.id = s.user_id AND u.sub = %(sub)s
LEFT JOIN {PLAN_OF_U} p ON true
LEFT JOIN agents a ON a.id = s.agent_id
LEFT JOIN teams t ON t.id = s.team_id
LEFT JOIN {rate_in_effect("(now() AT TIME ZONE 'UTC')::date")} fx ON true
WHERE r.id = %(run_id)s AND r.session_id = %(session_id)s AND r.parent_run_id IS NULL
"""

# The one statement that decides which decision continues the run: paused -> running, while the
# pause is within APPROVAL_TTL. A second decision (a retry, another device) finds it running: none.
CLAIM = """
UPDATE runs SET status = 'running', resumed_at = now(), reserved_zar = %(reserved_zar)s, cancel_requested_at = NULL
WHERE id = %(run_id)s AND status = 'paused' AND paused_at >= now() - make_interval(secs => %(ttl)s)
RETURNING id, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cost_in_rands
"""

RESUME_MEMBERS = """
UPDATE runs SET status = 'running', resumed_at = now()
WHERE parent_run_id = %(run_id)s AND status = 'paused'
RETURNING id, agent_name, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cost_in_rands
"""

DECIDE = """
UPDATE approvals SET status = %(status)s, note = %(note)s, decided_at = now()
WHERE run_id = %(run_id)s AND tool_call_id = %(tool_call_id)s AND status = 'pending'
"""

# What the continuation is built from, read after the claim: the rate in effect now, the session's
# summary, the history (the messages of the session's earlier completed or stopped turns, after the
# summary) and the run's own messages so far (its members' too), in order.
CONTINUATION_READ = f"""
SELECT fx.id AS fx_rate_id, fx.rate AS fx_rate, fx.effective_date AS fx_rate_date,
       ss.summary, history.messages AS history, own.messages AS run_messages,
       (SELECT max(te.seq) FROM turn_events te WHERE te.run_id = r.id) AS last_seq
FROM runs r
LEFT JOIN session_summaries ss ON ss.session_id = r.session_id
LEFT JOIN {rate_in_effect("(now() AT TIME ZONE 'UTC')::date")} fx ON true
LEFT JOIN {history_of('r.session_id', 'ss.through_message_id', 'h.id < r.id')} history ON true
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object('run_id', ce.run_id, 'agent_name', ce.agent_name, 'parts', ce.message_parts)
                     ORDER BY ce.id) AS messages
    FROM chat_events ce JOIN runs m ON m.id = ce.run_id
    WHERE m.id = r.id OR m.parent_run_id = r.id
) own ON true
WHERE r.id = %(run_id)s
"""

_EXPIRE_RUNS = """
UPDATE runs SET status = 'expired', error_code = 'approval-expired',
       error_message = 'the user did not decide on the pending tool calls within APPROVAL_TTL; nothing ran',
       reserved_zar = 0, reserved_tokens = 0, finished_at = now()
WHERE status = 'paused' AND {which}
RETURNING id, parent_run_id
"""

# One paused turn past APPROVAL_TTL (a decision, or a new message, came too late): it ends expired.
EXPIRE_RUN = f"""
WITH expired AS ({_EXPIRE_RUNS.format(which="(id = %(run_id)s OR parent_run_id = %(run_id)s) "
                                      "AND paused_at < now() - make_interval(secs => %(ttl)s)")}),
decided AS (
    UPDATE approvals SET status = 'expired', decided_at = now()
    WHERE status = 'pending' AND run_id IN (SELECT id FROM expired)
)
SELECT count(*) FILTER (WHERE parent_run_id IS NULL) AS expired FROM expired
"""

# Every pause past APPROVAL_TTL (the scheduled run, before the retention period looks at sessions).
EXPIRE_ALL = f"""
WITH expired AS ({_EXPIRE_RUNS.format(which="paused_at < now() - make_interval(secs => %(ttl)s)")}),
decided AS (
    UPDATE approvals SET status = 'expired', decided_at = now()
    WHERE status = 'pending' AND run_id IN (SELECT id FROM expired)
)
SELECT count(*) FILTER (WHERE parent_run_id IS NULL) AS expired FROM expired
"""

# POST .../cancel of a paused turn: nothing runs it, so it is closed here, its calls never run. Its
# messages are not history for the next turn (its tool calls have no result).
CANCEL_PAUSED = """
WITH cancelled AS (
    UPDATE runs r SET status = 'cancelled', error_code = 'approval-cancelled',
           error_message = 'stopped by the user while it waited for approval; the pending calls did not run',
           reserved_zar = 0, reserved_tokens = 0, finished_at = now()
    FROM sessions s JOIN users u ON u.id = s.user_id AND u.sub = %(sub)s
    WHERE s.id = r.session_id AND r.session_id = %(session_id)s AND r.status = 'paused'
      AND (r.id = %(run_id)s OR r.parent_run_id = %(run_id)s)
    RETURNING r.id, r.parent_run_id
),
decided AS (
    UPDATE approvals SET status = 'cancelled', decided_at = now()
    WHERE status = 'pending' AND run_id IN (SELECT id FROM cancelled WHERE parent_run_id IS NULL)
)
SELECT count(*) FILTER (WHERE parent_run_id IS NULL) AS cancelled FROM cancelled
"""

# The session's paused turn (GET /sessions/{id}: the approval card of an app opened later).
PAUSED_OF_SESSION = f"""
SELECT r.id AS run_id, r.paused_at, r.paused_at + make_interval(secs => %(ttl)s) AS expires_at, {_PENDING} AS pending
FROM runs r
WHERE r.session_id = %(session_id)s AND r.parent_run_id IS NULL AND r.status = 'paused'
  AND r.paused_at >= now() - make_interval(secs => %(ttl)s)
"""

# Every approval of a user, pending and decided (the export).
OF_USER = """
SELECT ap.run_id, r.session_id, ap.tool_call_id, ap.agent_name, ap.tool, ap.arguments, ap.summary, ap.status,
       ap.note, ap.created_at, ap.decided_at
FROM approvals ap JOIN runs r ON r.id = ap.run_id JOIN sessions s ON s.id = r.session_id
WHERE s.user_id = %(user_id)s
ORDER BY ap.created_at, ap.run_id, ap.tool_call_id
"""


def insert_approvals(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        with conn.cursor() as cur:
            cur.executemany(INSERT_APPROVAL, [{**r, "arguments": Jsonb(r["arguments"])} for r in rows])


def read_decision(conn: psycopg.Connection, *, sub: str, session_id: UUID, run_id: UUID,
                  ttl: int) -> dict[str, Any] | None:
    return conn.execute(READ_DECISION, {"sub": sub, "session_id": session_id, "run_id": run_id,
                                        "ttl": ttl}).fetchone()


def claim(conn: psycopg.Connection, run_id: UUID, *, ttl: int, reserved_zar: Any) -> dict[str, Any] | None:
    """Paused -> running (None: another decision won, or the pause expired)."""
    return conn.execute(CLAIM, {"run_id": run_id, "ttl": ttl, "reserved_zar": reserved_zar}).fetchone()


def resume_members(conn: psycopg.Connection, run_id: UUID) -> list[dict[str, Any]]:
    return conn.execute(RESUME_MEMBERS, {"run_id": run_id}).fetchall()


def decide(conn: psycopg.Connection, run_id: UUID, decisions: list[dict[str, Any]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(DECIDE, [{"run_id": run_id, **d} for d in decisions])


def continuation_read(conn: psycopg.Connection, run_id: UUID, *, history_turns: int,
                      history_tokens: int) -> dict[str, Any]:
    """CONTINUATION_READ; its history as a turn's (``chatcore.store.history``)."""
    return conn.execute(CONTINUATION_READ, {"run_id": run_id, "history_turns": history_turns,
                                            "history_tokens": history_tokens}).fetchone()


def expire_run(conn: psycopg.Connection, run_id: UUID, ttl: int) -> bool:
    """End a paused turn past APPROVAL_TTL as ``expired`` (False: it was not, or not paused)."""
    return bool(conn.execute(EXPIRE_RUN, {"run_id": run_id, "ttl": ttl}).fetchone()["expired"])


def expire_all(conn: psycopg.Connection, ttl: int) -> int:
    """End every pause past APPROVAL_TTL; how many turns ended."""
    return conn.execute(EXPIRE_ALL, {"ttl": ttl}).fetchone()["expired"]


def cancel_paused(conn: psycopg.Connection, *, sub: str, session_id: UUID, run_id: UUID) -> bool:
    """Stop the caller's paused turn (False: not the caller's, or not paused)."""
    return bool(conn.execute(CANCEL_PAUSED, {"sub": sub, "session_id": session_id,
                                             "run_id": run_id}).fetchone()["cancelled"])


def paused_of_session(conn: psycopg.Connection, session_id: UUID, ttl: int) -> dict[str, Any] | None:
    return conn.execute(PAUSED_OF_SESSION, {"session_id": session_id, "ttl": ttl}).fetchone()


def of_user(conn: psycopg.Connection, user_id: UUID) -> list[dict[str, Any]]:
    return conn.execute(OF_USER, {"user_id": user_id}).fetchall()
