"""A turn's stored events (``turn_events``) and its stop request (``runs.cancel_requested_at``).

A running turn appends its events in batches and, in the same round trip, reads whether it was
asked to stop; any instance reads them back after a sequence number to resume the stream.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

import psycopg

# One round trip per batch: the events (a retried batch inserts nothing twice, and a final event
# nothing once the turn has one: turn_events_one_final) and the stop request.
APPEND_EVENTS = """
WITH appended AS (
    INSERT INTO turn_events (run_id, seq, event, data)
    SELECT %(run_id)s, e.seq, e.event, e.data
    FROM unnest(%(seqs)s::integer[], %(events)s::text[], %(datas)s::text[]) AS e(seq, event, data)
    ON CONFLICT DO NOTHING
)
SELECT cancel_requested_at IS NOT NULL AS cancel_requested FROM runs WHERE id = %(run_id)s
"""

# A turn's last events, in the transaction that stores the turn (no round trip of their own); also
# the final event a resume rebuilt for a turn that stored none (the first one stored stays).
INSERT_EVENTS = """
INSERT INTO turn_events (run_id, seq, event, data)
SELECT %(run_id)s, e.seq, e.event, e.data
FROM unnest(%(seqs)s::integer[], %(events)s::text[], %(datas)s::text[]) AS e(seq, event, data)
ON CONFLICT DO NOTHING
"""

# The caller's turn (a top-level run of their session), with its last stored event: None for
# someone else's or an unknown one.
FIND_TURN = """
SELECT r.id, r.status, r.session_id, r.client_turn_id, last.seq AS last_seq, last.event AS last_event
FROM runs r
JOIN sessions s ON s.id = r.session_id
JOIN users u ON u.id = s.user_id AND u.sub = %(sub)s
LEFT JOIN LATERAL (
    SELECT te.seq, te.event FROM turn_events te WHERE te.run_id = r.id ORDER BY te.seq DESC LIMIT 1
) last ON true
WHERE r.id = %(run_id)s AND r.session_id = %(session_id)s AND r.parent_run_id IS NULL
"""

# The events after a sequence number, with the run as it is in the same snapshot: how it ended
# (for a final event when its own was never written or was pruned), whether it is stale, and its
# last stored event (a final one stored at or before the sequence number: nothing follows it).
READ_EVENTS = """
SELECT r.status, r.error_code, r.error_message, r.input_tokens, r.output_tokens, r.cache_read_tokens,
       r.cache_write_tokens, r.cost_usd, r.cost_in_rands,
       coalesce(r.resumed_at, r.started_at) < now() - make_interval(secs => %(stale_seconds)s) AS stale,
       extract(epoch FROM now() - r.finished_at) AS finished_seconds_ago,
       last.seq AS last_seq, last.event AS last_event,
       e.seq, e.event, e.data
FROM runs r
LEFT JOIN LATERAL (
    SELECT te.seq, te.event FROM turn_events te WHERE te.run_id = r.id ORDER BY te.seq DESC LIMIT 1
) last ON true
LEFT JOIN LATERAL (
    SELECT te.seq, te.event, te.data FROM turn_events te
    WHERE te.run_id = r.id AND te.seq > %(after)s ORDER BY te.seq LIMIT %(limit)s
) e ON true
WHERE r.id = %(run_id)s
ORDER BY e.seq
"""

# A stop asked of the caller's running turn: recorded once (a second request changes nothing).
REQUEST_CANCEL = """
UPDATE runs r SET cancel_requested_at = coalesce(r.cancel_requested_at, now())
FROM sessions s JOIN users u ON u.id = s.user_id AND u.sub = %(sub)s
WHERE r.id = %(run_id)s AND r.session_id = %(session_id)s AND s.id = r.session_id
  AND r.parent_run_id IS NULL AND r.status = 'running'
RETURNING coalesce(r.resumed_at, r.started_at) < now() - make_interval(secs => %(stale_seconds)s) AS stale
"""

# A running turn whose process is gone (stale) cannot stop itself: it is closed as cancelled here.
CLOSE_STALE_CANCELLED = """
UPDATE runs SET status = 'cancelled', error_code = 'cancelled',
       error_message = 'stopped by the user after its process ended', reserved_zar = 0, reserved_tokens = 0, finished_at = now()
WHERE id = %(run_id)s AND status = 'running'
"""

# Finished turns' events older than the retention, but their final event (their messages stay):
# a replay then sends that final event as it was first sent.
PRUNE_EVENTS = """
DELETE FROM turn_events te USING runs r
WHERE te.run_id = r.id AND r.status <> 'running'
  AND r.finished_at < now() - make_interval(hours => %(hours)s)
  AND te.event <> ALL(%(keep)s::text[])
"""


def append_events(conn: psycopg.Connection, run_id: UUID, batch: list[tuple[int, str, str]]) -> bool:
    """Store ``batch`` (``(seq, event, data)``) and say whether the turn was asked to stop."""
    row = conn.execute(APPEND_EVENTS, {
        "run_id": run_id, "seqs": [b[0] for b in batch], "events": [b[1] for b in batch],
        "datas": [b[2] for b in batch]}).fetchone()
    return bool(row and row["cancel_requested"])


def insert_events(conn: psycopg.Connection, run_id: UUID, batch: list[tuple[int, str, str]]) -> None:
    """Store ``batch`` (``(seq, event, data)``); a pipelined statement, so it waits for nothing."""
    if batch:
        conn.execute(INSERT_EVENTS, {"run_id": run_id, "seqs": [b[0] for b in batch],
                                     "events": [b[1] for b in batch], "datas": [b[2] for b in batch]})


def find_turn(conn: psycopg.Connection, sub: str, session_id: UUID, run_id: UUID) -> dict[str, Any] | None:
    return conn.execute(FIND_TURN, {"sub": sub, "session_id": session_id, "run_id": run_id}).fetchone()


def read_events(conn: psycopg.Connection, run_id: UUID, *, after: int, stale_seconds: int,
                limit: int = 500) -> list[dict[str, Any]]:
    """Rows of READ_EVENTS: at least one (the run's), ``seq`` None when no event follows ``after``;
    each with the run's last stored event (``last_seq``, ``last_event``)."""
    return conn.execute(READ_EVENTS, {"run_id": run_id, "after": after, "stale_seconds": stale_seconds,
                                      "limit": limit}).fetchall()


def request_cancel(conn: psycopg.Connection, sub: str, session_id: UUID, run_id: UUID,
                   stale_seconds: int) -> bool | None:
    """Ask the caller's running turn to stop: None when it is not running (or not theirs), else
    whether it is stale (then the caller closes it with ``close_stale_cancelled``)."""
    row = conn.execute(REQUEST_CANCEL, {"sub": sub, "session_id": session_id, "run_id": run_id,
                                        "stale_seconds": stale_seconds}).fetchone()
    return None if row is None else bool(row["stale"])


def close_stale_cancelled(conn: psycopg.Connection, run_id: UUID) -> None:
    conn.execute(CLOSE_STALE_CANCELLED, {"run_id": run_id})


def prune_events(conn: psycopg.Connection, hours: int, keep: Collection[str]) -> int:
    """Delete the events of turns finished more than ``hours`` ago but those named in ``keep``
    (their final events); how many were deleted."""
    return conn.execute(PRUNE_EVENTS, {"hours": hours, "keep": list(keep)}).rowcount


# A client read the turn's final event through the events route (no turn_finished push is sent then).
MARK_DELIVERED = "UPDATE runs SET final_delivered_at = now() WHERE id = %(run_id)s AND final_delivered_at IS NULL"


def mark_delivered(conn: psycopg.Connection, run_id: UUID) -> None:
    conn.execute(MARK_DELIVERED, {"run_id": run_id})
