"""GET /usage: the caller's tokens and cost by day and by agent or team (``chatcore.money.spending``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from chatcore.config import get_settings
from chatcore.errors import InvalidInput
from chatcore.money import spending
from chatcore.web.dependencies import Caller, Db
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.web.schemas import UsageOut

router = APIRouter(tags=["usage"])


@router.get("/usage", response_model=UsageOut, response_model_by_alias=True, responses=PROBLEM_RESPONSES)
def get_usage(
    sub: Caller,
    conn: Db,
    start: Annotated[date | None, Query(alias="from", description="first day (UTC), default: first of this month")] = None,
    end: Annotated[date | None, Query(alias="to", description="last day (UTC, inclusive), default: today")] = None,
) -> UsageOut:
    """The caller's tokens and cost in rands by day and by agent or team."""
    end = end or datetime.now(UTC).date()
    start = start or end.replace(day=1)
    if start > end:
        raise InvalidInput("'from' must not be after 'to'", field="from")
    if end >= date.max:  # the day after 'to' must exist
        raise InvalidInput(f"'to' must be before {date.max.isoformat()}", field="to")
    max_days = get_settings().max_usage_days
    if (end - start).days >= max_days:
        raise InvalidInput(f"at most {max_days} days per request", field="to")
    return UsageOut.model_validate(spending.usage_statement(conn, sub, start, end))
