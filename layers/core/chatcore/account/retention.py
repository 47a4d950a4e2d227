"""The retention period: sessions inactive for ``RETENTION_DAYS`` days are deleted (0: kept forever).

The scheduled function calls ``apply_retention(days, budget_seconds=...)`` once a run. A session is
inactive since its ``updated_at`` (its last turn, or a rename), whoever it belongs to. Each one goes
the way DELETE /sessions/{id} goes (``deletion.delete_session``): its photos in S3 first, then its
messages, runs, stored events and summary, while what it cost is kept with no content
(``deleted_session_usage``: usage, budgets and the rollup still count it). A session whose turn is
running (and not stale) is skipped: the turn makes it active again. Sessions are taken oldest first,
a page at a time, with no connection held while one is deleted (S3 is never called in a transaction)
and no more than ``budget_seconds``: what is left is deleted by the next run.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any
from uuid import UUID

from chatcore import config, db
from chatcore.account import deletion
from chatcore.config import get_settings
from chatcore.errors import NotFound, TurnInProgress
from chatcore.store import sessions

log = logging.getLogger(__name__)

PAGE_SIZE = 100
# This many deletions failing one after the other (S3 or the database down) end the run: the rest
# would fail the same way. They are counted as errors, and the next run tries again.
MAX_ERRORS_IN_A_ROW = 5

def apply_retention(days: int, *, budget_seconds: float = 180.0, page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """Delete the sessions inactive for more than ``days`` days, for at most ``budget_seconds``.

    Returns the counts for the log: ``sessions_deleted``, ``sessions_skipped`` (a turn running in
    them), ``errors`` (deletions that failed; tried again next run) and ``unfinished`` (the budget
    or the errors ended the run with inactive sessions left)."""
    days = config.check("retention_days", days)  # RuntimeError naming RETENTION_DAYS when out of range
    summary: dict[str, Any] = {"days": days, "sessions_deleted": 0, "sessions_skipped": 0, "errors": 0,
                               "unfinished": False}
    if days == 0:
        return summary
    deadline = time.monotonic() + budget_seconds
    stale_seconds = get_settings().stale_turn_seconds
    with db.connection() as conn:
        cutoff: datetime = sessions.inactivity_cutoff(conn, days)
    after: tuple[datetime, UUID] | None = None
    errors_in_a_row = 0
    while True:
        with db.connection() as conn:  # returned before any session is deleted
            page = sessions.inactive_sessions(conn, cutoff, after=after, stale_seconds=stale_seconds,
                                              limit=page_size)
        for row in page:
            if time.monotonic() >= deadline or errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                summary["unfinished"] = True
                return summary
            after = (row["updated_at"], row["id"])
            if row["running_id"] is not None and not row["running_stale"]:
                summary["sessions_skipped"] += 1
                continue
            try:
                deletion.delete_session(row["id"], inactive_before=cutoff)
            except NotFound:  # deleted meanwhile (its user, an account's deletion), or active again
                continue
            except TurnInProgress:  # a turn began since the page was read
                summary["sessions_skipped"] += 1
                continue
            except Exception:  # noqa: BLE001 - counted and logged; the next run tries again
                summary["errors"] += 1
                errors_in_a_row += 1
                log.warning("retention: could not delete session %s", row["id"], exc_info=True)
                continue
            errors_in_a_row = 0
            summary["sessions_deleted"] += 1
        if len(page) < page_size:
            return summary
