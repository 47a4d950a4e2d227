"""Days: the one reading of a ``YYYY-MM-DD`` day (command arguments, scheduled events, rate files,
the API's query parameters) and the bounds of a UTC day.

A day is exactly four, two and two digits that name a real date. Python's ``date.fromisoformat``
also takes ``20261207`` and ISO week dates, and pydantic reads a number as a Unix time: neither is
a day here.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DAY = re.compile(DAY_PATTERN)


class NotADay(ValueError):
    """Text that is not a ``YYYY-MM-DD`` day; ``no_such_day`` when it has the form but names no date."""

    def __init__(self, message: str, *, no_such_day: bool) -> None:
        super().__init__(message)
        self.no_such_day = no_such_day


def parse_day(text: object) -> date:
    """The day ``text`` names, or ``NotADay`` saying why not."""
    if isinstance(text, date) and not isinstance(text, datetime):
        return text
    if not isinstance(text, str) or not _DAY.match(text):
        raise NotADay(f"not a date (YYYY-MM-DD): {text!r}", no_such_day=False)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise NotADay(f"{text!r} does not exist (YYYY-MM-DD)", no_such_day=True) from None


def day_start(day: date) -> datetime:
    """The first moment of a UTC day."""
    return datetime.combine(day, time(0), tzinfo=UTC)
