"""Stopping a turn (POST .../cancel, the app's stop button), from any instance: the request is
recorded on the run; the turn, wherever it runs, reads it with its next batch of events
(``turns.turn_events``) and ends. Without agno: the API function stops turns with this module alone."""

from __future__ import annotations

from uuid import UUID

import psycopg

from chatcore.config import get_settings
from chatcore.errors import NotFound, TurnFinished
from chatcore.store import approvals, turn_events


def request_stop(conn: psycopg.Connection, sub: str, session_id: UUID, run_id: UUID) -> None:
    """Record that the caller's running turn should stop. ``NotFound`` for a turn that is not the
    caller's, ``TurnFinished`` for one that has ended. A turn whose process is gone (stale) is closed
    here, as cancelled: nothing would notice the request."""
    stale = turn_events.request_cancel(conn, sub, session_id, run_id, get_settings().stale_turn_seconds)
    if stale is None and approvals.cancel_paused(conn, sub=sub, session_id=session_id, run_id=run_id):
        return  # a paused turn: nothing runs it, so it is closed here (its pending calls never run)
    if stale is None:
        row = turn_events.find_turn(conn, sub, session_id, run_id)
        if row is None:
            raise NotFound("no such turn")
        raise TurnFinished(f"the turn has already finished ({row['status']})", run_id=str(run_id),
                           run_status=row["status"])
    if stale:
        turn_events.close_stale_cancelled(conn, run_id)
