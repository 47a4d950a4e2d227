"""What the command-line tools (migrate, fx, budgets, rollup, report, reprice) share."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import date

import psycopg

from chatcore import days


def database_url(args: argparse.Namespace) -> str | None:
    """``--database-url`` or ``$DATABASE_URL``; None (after saying so on stderr) when neither is set."""
    url = args.database_url or os.environ.get("DATABASE_URL")
    if not url:
        print("error: set DATABASE_URL or pass --database-url", file=sys.stderr)
    return url


def day(text: str) -> date:
    """An argparse type: a YYYY-MM-DD day (``chatcore.days``)."""
    try:
        return days.parse_day(text)
    except days.NotADay as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def argument_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A command's parser with the ``--database-url`` every command takes."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--database-url", default=None, help="default: $DATABASE_URL")
    return parser


def run_with_connection(args: argparse.Namespace, work: Callable[[psycopg.Connection], int | None],
                        errors: tuple[type[Exception], ...] = (ValueError,)) -> int:
    """``work(conn)``'s exit code (None: 0) on a connection to the command's database.

    2 when no database is named; 1, after ``error: ...`` on stderr, when ``work`` raises one of
    ``errors`` or a database error.
    """
    url = database_url(args)
    if not url:
        return 2
    from chatcore import db

    try:
        with db.connect(url) as conn:
            return work(conn) or 0
    except (*errors, psycopg.Error) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
