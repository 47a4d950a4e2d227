"""The scheduled function (EventBridge): the cost rollup, then the housekeeping of users' data.

A scheduled event (``"detail-type": "Scheduled Event"``, empty ``detail``) runs the incremental
rollup: today and yesterday (UTC) plus every day touched by rows created since the last
watermark. An event whose ``detail`` is ``{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}`` recomputes
that range of UTC days instead, and does nothing else. Either way the rollup is idempotent.

The scheduled run then, each step on its own (one failing does not stop the others):

- prunes the stored events of turns finished more than ``EVENT_RETENTION_HOURS`` (24) ago (their
  messages stay) and the rows of uploads expired more than a week ago (the bucket's lifecycle
  deleted their files): ``events_pruned``, ``uploads_pruned``;
- deletes expired exports (``export.prune_exports``): ``exports``;
- resumes account deletions no pass has worked on for 15 minutes (an account function that
  failed or was never started): ``deletions``;
- applies the retention period, when ``RETENTION_DAYS`` > 0: sessions inactive for longer are
  deleted, photos and all, their usage kept (``chatcore.account.retention``): ``retention``.

The summary is returned and logged ("rollup done"); the housekeeping stops ``MARGIN_SECONDS``
before the function's timeout (what is left waits for the next run). When any step failed, or a
session or account could not be deleted, the handler raises after logging it, so Lambda retries the
run (every step is idempotent) and the failures queue and the alarms see it.

The database is named as for every function (``DATABASE_URL``, ``DB_SECRET_ARN`` or
``DB_IAM_AUTH``; see chatcore.db). Imports psycopg, boto3 (S3) and chatcore, never agno (cold start).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg

from chatcore import db
from chatcore.account import deletion, export, retention
from chatcore.config import get_settings
from chatcore.money import rollup
from chatcore.observability import logger
from chatcore.store import accounts, turn_events, uploads

# A bad setting (a RETENTION_DAYS that is not a whole number of days...) fails the cold start,
# naming the variable, instead of a run at midnight.
get_settings()

# Without a Lambda context (a script, a test): the function's timeout in template.yaml.
DEFAULT_SECONDS = 300
# The housekeeping stops this long before the function would time out.
MARGIN_SECONDS = 30
# An account deletion no pass has worked on for this long is resumed here.
DELETION_IDLE_SECONDS = 15 * 60
# How long one resumed deletion may wait for its account's turns to stop (a later run goes on).
DELETION_WAIT_SECONDS = 30

_conn: psycopg.Connection | None = None


def _connection() -> psycopg.Connection:
    """One connection per sandbox, reopened when closed or broken."""
    global _conn
    if _conn is None or _conn.closed or _conn.broken:
        _conn = db.connect()
    return _conn


def _range(detail: dict[str, Any]) -> tuple[date, date] | None:
    if not isinstance(detail, dict) or ("from" not in detail and "to" not in detail):
        return None
    if "from" not in detail or "to" not in detail:
        raise ValueError('a range needs both "from" and "to" (YYYY-MM-DD) in the event detail')
    from_day, to_day = rollup.parse_day(detail["from"]), rollup.parse_day(detail["to"])
    if from_day > to_day:
        raise ValueError(f"from {from_day} is after to {to_day}")
    return from_day, to_day


def _rollup(days: tuple[date, date] | None) -> rollup.RollupResult:
    for attempt in (1, 2):
        conn = _connection()
        try:
            return rollup.rollup(conn, *days) if days else rollup.incremental(conn)
        except psycopg.OperationalError:
            if attempt == 2 or not conn.broken:
                raise
            logger.warning("database connection lost; reconnecting once")
    raise AssertionError("unreachable")


def _resume_deletions(deadline: float) -> dict[str, int]:
    """Resume the account deletions nothing works on, within half of the time left."""
    ids = accounts.unfinished_deletions(_connection(), idle_seconds=DELETION_IDLE_SECONDS)
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
            logger.warning("could not resume the account deletion", extra={"deletion_id": str(deletion_id)},
                           exc_info=True)
            counts["errors"] += 1
            continue
        counts["done" if result.done else "unfinished"] += 1
    return counts


def _housekeeping(summary: dict[str, Any], failed: dict[str, str], deadline: float) -> None:
    settings = get_settings()

    def step(name: str, work: Callable[[], Any]) -> None:
        try:
            summary[name] = work()
        except Exception as e:  # noqa: BLE001 - logged, reported, and the other steps still run
            logger.exception(f"scheduled step {name} failed")
            failed[name] = f"{e.__class__.__name__}: {e}"[:300]

    step("events_pruned", lambda: turn_events.prune_events(_connection(), settings.event_retention_hours))
    step("uploads_pruned", lambda: uploads.prune_uploads(_connection()))
    step("exports", export.prune_exports)
    step("deletions", lambda: _resume_deletions(deadline))
    step("retention", lambda: retention.apply_retention(
        settings.retention_days, budget_seconds=max(0.0, deadline - time.monotonic())))
    for name in ("deletions", "retention"):
        errors = (summary.get(name) or {}).get("errors")
        if errors:
            failed.setdefault(name, f"{errors} could not be deleted (see the warnings); the next run tries again")


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    started = time.monotonic()
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    deadline = started + (remaining() / 1000 if remaining else DEFAULT_SECONDS) - MARGIN_SECONDS
    event = event or {}
    days = _range(event.get("detail") or {})
    if days:  # a range recomputed by hand: the rollup alone, and its failure is the run's
        summary = _rollup(days).summary()
        logger.info("rollup done", extra=summary)
        return summary
    summary: dict[str, Any] = {}
    failed: dict[str, str] = {}
    try:
        summary.update(_rollup(None).summary())
    except Exception as e:  # noqa: BLE001 - the housekeeping still runs; the run fails below
        logger.exception("the rollup failed")
        failed["rollup"] = f"{e.__class__.__name__}: {e}"[:300]
    _housekeeping(summary, failed, deadline)
    if failed:
        summary["failed"] = failed
        logger.error("rollup done, with failures", extra=summary)
        raise RuntimeError(f"the scheduled run's {', '.join(failed)} failed (see the log); "
                           "every step is idempotent, so a retry is safe")
    logger.info("rollup done", extra=summary)
    return summary
