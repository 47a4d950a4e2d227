"""The scheduled run (the scheduled function, on EventBridge's schedule): the cost rollup, then the
housekeeping of users' data. Each job is a function; ``run`` runs them all, each on its own (one
failing does not stop the others), and ``recompute`` is a range of days recomputed by hand.

The jobs, by the name of their entry in the summary:

- ``rollup`` (its summary's fields at the top level): the incremental cost rollup (today and
  yesterday, UTC, plus every day touched by rows created since the last watermark);
- ``events_pruned``: the stored events of turns finished more than ``EVENT_RETENTION_HOURS`` ago
  but their final event (their messages stay, and a replay still ends with the same final event);
- ``resume_tokens_pruned``: expired resume tokens (a browser's resume of a turn's stream);
- ``uploads_pruned``: the rows of uploads expired more than a week ago (the bucket's lifecycle
  deleted their files);
- ``exports``: expired exports deleted, lost ones failed (``chatcore.account.export.prune_exports``);
- ``deletions``: account deletions no pass has worked on for 15 minutes, resumed (an account
  function that failed or was never started);
- ``approvals_expired``: turns paused for the user's approval for longer than ``APPROVAL_TTL`` end
  ``expired`` (nothing runs; chatcore.turns.approvals), before the retention period;
- ``pushes_pruned``: the records of push notifications sent more than ``PUSH_RECORD_DAYS`` ago (each
  was kept so that a retry or a second instance never sends it twice; ``chatcore.notify.pushes``);
- ``retention``: when ``RETENTION_DAYS`` > 0, sessions inactive for longer deleted, photos and all,
  their usage kept (``chatcore.account.retention``).

Every job is idempotent. The jobs after the rollup share a deadline: what is left waits for the
next run. A job that failed, or a session or account that could not be deleted, is named in the
run's ``failed``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from chatcore import db
from chatcore.account import deletion, export, retention
from chatcore.config import get_settings
from chatcore.money import rollup
from chatcore.store import accounts, approvals, devices, resume_tokens, turn_events, uploads
from chatcore.turns.outcome import FINAL_EVENTS

log = logging.getLogger(__name__)

# A push's record is kept this long (a month's budget claims, a turn's retries, well within it).
PUSH_RECORD_DAYS = 62
# An account deletion no pass has worked on for this long is resumed.
DELETION_IDLE_SECONDS = 15 * 60
# How long one resumed deletion may wait for its account's turns to stop (a later run goes on).
DELETION_WAIT_SECONDS = 30


def rollup_costs(days: tuple[date, date] | None = None) -> dict[str, Any]:
    """The cost rollup: incremental, or the UTC days ``days`` (inclusive) recomputed; its summary.
    A connection lost on the way (a restart, a failover) runs it once more."""
    def work() -> dict[str, Any]:
        with db.connection() as conn:
            return (rollup.rollup(conn, *days) if days else rollup.incremental(conn)).summary()
    return db.once_more_if_connection_lost(work, what="the rollup")


def prune_events(deadline: float) -> int:
    with db.connection() as conn:
        return turn_events.prune_events(conn, get_settings().event_retention_hours, keep=FINAL_EVENTS.values())


def prune_resume_tokens(deadline: float) -> int:
    with db.connection() as conn:
        return resume_tokens.prune(conn)


def prune_uploads(deadline: float) -> int:
    with db.connection() as conn:
        return uploads.prune_uploads(conn)


def prune_exports(deadline: float) -> dict[str, int]:
    return export.prune_exports()


def resume_deletions(deadline: float) -> dict[str, int]:
    """Resume the account deletions nothing works on, within half of the time left."""
    with db.connection() as conn:
        ids = accounts.unfinished_deletions(conn, idle_seconds=DELETION_IDLE_SECONDS)
    until = time.monotonic() + max(0.0, deadline - time.monotonic()) / 2
    counts = {"resumed": 0, "done": 0, "unfinished": 0, "errors": 0}
    for deletion_id in ids:
        left = until - time.monotonic()
        if left <= 0:
            counts["unfinished"] += 1
            continue
        counts["resumed"] += 1
        try:
            result = deletion.run_deletion(deletion_id, wait_seconds=min(DELETION_WAIT_SECONDS, left))
        except Exception:  # noqa: BLE001 - counted; the deletion records its error and is resumed again
            log.warning("could not resume the account deletion %s", deletion_id, exc_info=True)
            counts["errors"] += 1
            continue
        counts["done" if result.done else "unfinished"] += 1
    return counts


def expire_approvals(deadline: float) -> int:
    """End the pauses older than ``APPROVAL_TTL`` (``expired``: nothing runs), before the retention
    period looks at their sessions: a pause never keeps a session alive."""
    with db.connection() as conn:
        return approvals.expire_all(conn, get_settings().approval_ttl)


def prune_pushes(deadline: float) -> int:
    with db.connection() as conn:
        return devices.prune_pushes(conn, PUSH_RECORD_DAYS)


def apply_retention(deadline: float) -> dict[str, Any]:
    return retention.apply_retention(get_settings().retention_days,
                                     budget_seconds=max(0.0, deadline - time.monotonic()))


# The housekeeping jobs, in the order they run, by their name in the summary.
HOUSEKEEPING: dict[str, Callable[[float], Any]] = {
    "events_pruned": prune_events,
    "resume_tokens_pruned": prune_resume_tokens,
    "uploads_pruned": prune_uploads,
    "exports": prune_exports,
    "deletions": resume_deletions,
    "approvals_expired": expire_approvals,
    "pushes_pruned": prune_pushes,
    "retention": apply_retention,
}


def recompute(days: tuple[date, date]) -> dict[str, Any]:
    """A range of days recomputed by hand: the rollup alone (its failure is raised)."""
    return rollup_costs(days)


def run(deadline: float) -> tuple[dict[str, Any], dict[str, str]]:
    """Every job, each on its own: (the summary, the jobs that failed with why)."""
    summary: dict[str, Any] = {}
    failed: dict[str, str] = {}
    try:
        summary.update(rollup_costs())
    except Exception as e:  # noqa: BLE001 - the housekeeping still runs; the run fails
        log.exception("the rollup failed")
        failed["rollup"] = f"{e.__class__.__name__}: {e}"[:300]
    for name, job in HOUSEKEEPING.items():
        try:
            summary[name] = job(deadline)
        except Exception as e:  # noqa: BLE001 - logged, reported, and the other jobs still run
            log.exception("scheduled job %s failed", name)
            failed[name] = f"{e.__class__.__name__}: {e}"[:300]
    for name in ("deletions", "retention"):
        errors = (summary.get(name) or {}).get("errors")
        if errors:
            failed.setdefault(name, f"{errors} could not be deleted (see the warnings); the next run tries again")
    return summary, failed
