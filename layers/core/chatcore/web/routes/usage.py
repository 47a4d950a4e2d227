"""GET /usage: the caller's tokens and cost by day and by agent or team (``chatcore.money.spending``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from chatcore import days
from chatcore.config import get_settings
from chatcore.errors import InvalidInput
from chatcore.money import spending
from chatcore.web.dependencies import Caller, Db
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.wire.schemas import UsageOut

router = APIRouter(tags=["usage"])


@router.get("/usage", response_model=UsageOut, response_model_by_alias=True, responses=PROBLEM_RESPONSES)
def get_usage(
    sub: Caller,
    conn: Db,
    start_day: Annotated[str | None, Query(alias="from", pattern=days.DAY_PATTERN, json_schema_extra={"format": "date"},
                                           description="first day (UTC), YYYY-MM-DD; default: the first of "
                                                       "'to''s month")] = None,
    end_day: Annotated[str | None, Query(alias="to", pattern=days.DAY_PATTERN, json_schema_extra={"format": "date"},
                                         description="last day (UTC, inclusive), YYYY-MM-DD, before 9999-12-31; "
                                                     "default: today")] = None,
) -> UsageOut:
    """The caller's tokens and cost in rands by day and by agent or team, over at most MAX_USAGE_DAYS
    (366) days (``from`` at most 365 days before ``to``, and not after it; else 422)."""
    end = _day(end_day, "to") or datetime.now(UTC).date()
    start = _day(start_day, "from") or end.replace(day=1)
    if start > end:
        raise InvalidInput("'from' must not be after 'to'", field="from")
    if end >= date.max:  # the day after 'to' must exist
        raise InvalidInput(f"'to' must be before {date.max.isoformat()}", field="to")
    max_days = get_settings().max_usage_days
    if (end - start).days >= max_days:
        raise InvalidInput(f"at most {max_days} days per request", field="to")
    return UsageOut.model_validate(spending.usage_statement(conn, sub, start, end))


def _day(value: str | None, name: str) -> date | None:
    """A query parameter's day (``chatcore.days``), or a 422 naming it."""
    if value is None:
        return None
    try:
        return days.parse_day(value)
    except days.NotADay as e:
        raise InvalidInput(f"'{name}' is not a day of the calendar (YYYY-MM-DD)", field=name) from e
