"""What the command-line tools (migrate, fx, budgets, rollup, report, reprice) share."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime, time


def database_url(args: argparse.Namespace) -> str | None:
    """``--database-url`` or ``$DATABASE_URL``; None (after saying so on stderr) when neither is set."""
    url = args.database_url or os.environ.get("DATABASE_URL")
    if not url:
        print("error: set DATABASE_URL or pass --database-url", file=sys.stderr)
    return url


def day(text: str) -> date:
    """An argparse type: a YYYY-MM-DD day."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def day_start(day: date) -> datetime:
    """The first moment of a UTC day."""
    return datetime.combine(day, time(0), tzinfo=UTC)
