"""The scheduled cost rollup (EventBridge): recomputes ``daily_costs``, and prunes the stored
events of turns finished more than ``EVENT_RETENTION_HOURS`` (24) ago (their messages stay) and the
rows of uploads expired more than a week ago (the bucket's lifecycle deleted their files).

A scheduled event (``"detail-type": "Scheduled Event"``, empty ``detail``) runs the incremental
rollup: today and yesterday (UTC) plus every day touched by rows created since the last
watermark. An event whose ``detail`` is ``{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}`` recomputes
that range of UTC days instead. Either way the result is idempotent.

The database is named as for every function (``DATABASE_URL``, ``DB_SECRET_ARN`` or
``DB_IAM_AUTH``; see chatcore.db). Imports psycopg and chatcore.money.rollup, never agno (cold start).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg

from chatcore import db
from chatcore.config import get_settings
from chatcore.money import rollup
from chatcore.store import turn_events, uploads
from chatcore.observability import logger

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


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    event = event or {}
    days = _range(event.get("detail") or {})
    for attempt in (1, 2):
        conn = _connection()
        try:
            result = rollup.rollup(conn, *days) if days else rollup.incremental(conn)
            break
        except psycopg.OperationalError:
            if attempt == 2 or not conn.broken:
                raise
            logger.warning("database connection lost; reconnecting once")
    summary = result.summary()
    if not days:  # the schedule (not a range recomputed by hand) also prunes old turns' events
        summary["events_pruned"] = turn_events.prune_events(_connection(), get_settings().event_retention_hours)
        summary["uploads_pruned"] = uploads.prune_uploads(_connection())
    logger.info("rollup done", extra=summary)
    return summary
