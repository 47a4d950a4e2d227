"""The scheduled function (EventBridge): the scheduled run of ``chatcore.scheduled``, the cost
rollup and then the housekeeping of users' data.

A scheduled event (``"detail-type": "Scheduled Event"``, empty ``detail``) runs every job
(``scheduled.run``). An event whose ``detail`` is ``{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}``
recomputes that range of UTC days instead, and does nothing else. Every job is idempotent.

The summary is returned and logged ("scheduled run done"); the housekeeping stops ``MARGIN_SECONDS``
before the function's timeout (what is left waits for the next run). When any job failed, or a
session or account could not be deleted, the handler raises after logging it, so Lambda retries the
run and the failures queue and the alarms see it.

The database is named as for every function (``DATABASE_URL``, ``DB_SECRET_ARN`` or
``DB_IAM_AUTH``; see chatcore.db). Imports psycopg, boto3 (S3) and chatcore, never agno (cold start).
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from chatcore import days, scheduled
from chatcore.config import get_settings
from chatcore.observability import logger

# A bad setting (a RETENTION_DAYS that is not a whole number of days...) fails the cold start,
# naming the variable, instead of a run at midnight.
get_settings()

# Without a Lambda context (a script, a test): the function's timeout in template.yaml.
DEFAULT_SECONDS = 300
# The housekeeping stops this long before the function would time out.
MARGIN_SECONDS = 30


def _range(detail: dict[str, Any]) -> tuple[date, date] | None:
    if not isinstance(detail, dict) or ("from" not in detail and "to" not in detail):
        return None
    if "from" not in detail or "to" not in detail:
        raise ValueError('a range needs both "from" and "to" (YYYY-MM-DD) in the event detail')
    from_day, to_day = days.parse_day(detail["from"]), days.parse_day(detail["to"])
    if from_day > to_day:
        raise ValueError(f"from {from_day} is after to {to_day}")
    return from_day, to_day


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    started = time.monotonic()
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    deadline = started + (remaining() / 1000 if remaining else DEFAULT_SECONDS) - MARGIN_SECONDS
    event = event or {}
    range_ = _range(event.get("detail") or {})
    if range_:  # a range recomputed by hand: the rollup alone, and its failure is the run's
        summary = scheduled.recompute(range_)
        logger.info("scheduled run done", extra=summary)
        return summary
    summary, failed = scheduled.run(deadline)
    if failed:
        summary["failed"] = failed
        logger.error("scheduled run done, with failures", extra=summary)
        raise RuntimeError(f"the scheduled run's {', '.join(failed)} failed (see the log); "
                           "every job is idempotent, so a retry is safe")
    logger.info("scheduled run done", extra=summary)
    return summary
