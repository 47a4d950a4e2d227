"""A session's history as a turn reads it: the one definition of which stored messages the model's
input is built from (``chatcore.turns.context`` then picks what one request holds).

The history is the messages of the session's completed and stopped top-level turns after its
summary, newest turns first while they can still fit the request: each finished run stores
``history_tokens`` (migration 0020: the sum of ``message_history_tokens`` over its messages, a lower
bound of the context builder's own estimate), and turns are read while the turns newer than them
sum to at most ``history_tokens`` (the token budget and a margin): the first turn past the budget
is read too, so the builder still sees that turns were left out. At most ``history_turns`` turns
(HISTORY_MAX_TURNS) either way. A run without the stored count (NULL) counts 0: always read.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

# No bound by size (a caller that reads by HISTORY_MAX_TURNS alone).
UNBOUNDED_TOKENS = 2**62

# What a run's messages add to a request, at least (runs.history_tokens): FINISH_RUN and MEASURE_RUNS.
RUN_HISTORY_TOKENS = """(SELECT coalesce(sum(message_history_tokens(ce.message_parts)), 0)::integer
                         FROM chat_events ce WHERE ce.run_id = runs.id)"""


def history_of(session_sql: str, summary_sql: str, before_sql: str = "true") -> str:
    """A LATERAL subquery (``messages``: the history's ``message_parts``, oldest first) of the session
    ``session_sql`` after the summary whose last covered row id is ``summary_sql`` (NULL: none), of the
    top-level runs that also meet ``before_sql`` (a condition on ``h``); parameters ``history_turns``
    and ``history_tokens``."""
    return f"""LATERAL (
    -- completed and stopped (cancelled: the user saw the partial answer) top-level turns only: a
    -- failed turn's user message would otherwise be merged into the next request by Claude's
    -- formatter and could repeat the failure; and only what the session's summary does not cover
    SELECT jsonb_agg(ce.message_parts ORDER BY ce.id) AS messages
    FROM chat_events ce
    WHERE ce.run_id IN (
        SELECT w.id FROM (
            SELECT h.id, sum(coalesce(h.history_tokens, 0)) OVER (
                       ORDER BY h.id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS newer_tokens
            FROM runs h
            WHERE h.session_id = {session_sql} AND h.parent_run_id IS NULL AND {before_sql}
              AND (h.status = 'completed' OR (h.status = 'cancelled' AND h.error_code IS DISTINCT FROM 'approval-cancelled'))
              AND ({summary_sql} IS NULL OR h.id > {summary_sql})
            ORDER BY h.id DESC LIMIT %(history_turns)s) w
        WHERE w.newer_tokens IS NULL OR w.newer_tokens <= %(history_tokens)s)
      AND ({summary_sql} IS NULL OR ce.id > {summary_sql})
)"""


# Measure runs whose messages were written without FINISH_RUN (the bench's copied turns, tests).
MEASURE_RUNS = f"UPDATE runs SET history_tokens = {RUN_HISTORY_TOKENS} WHERE id = ANY(%(ids)s)"


def read_margin(max_tokens: int) -> int:
    """The ``history_tokens`` a turn reads up to: the token budget (CONTEXT_MAX_TOKENS) and as much
    again, so a compaction (``turns.compaction``) still sees turns beyond the window it folds."""
    return 2 * max_tokens


def measure_runs(conn: psycopg.Connection, run_ids: list[UUID]) -> None:
    conn.execute(MEASURE_RUNS, {"ids": run_ids})


def history_params(settings: Any) -> dict[str, int]:
    """The parameters of ``history_of`` from the settings (HISTORY_MAX_TURNS, CONTEXT_MAX_TOKENS)."""
    return {"history_turns": settings.history_max_turns, "history_tokens": read_margin(settings.context_max_tokens)}
