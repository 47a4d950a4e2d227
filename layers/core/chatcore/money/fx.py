"""Exchange rates (``fx_rates``): add, import and list USD/ZAR (or other) rates.

    python -m chatcore.money.fx add --date 2026-11-20 --rate 18.2345 [--source "SARB 10:30 rate"] [--replace]
    python -m chatcore.money.fx import rates.csv [--format generic|sarb] [--source ...] [--replace]
    python -m chatcore.money.fx list [--from 2026-11-01] [--to 2026-11-30]

A rate is ``quote`` units per one ``base`` unit (rands per US dollar), effective from its date
until the next rate's date. A turn uses the latest rate effective on or before its (UTC) day and
locks the rate and its date on every row it prices: adding or replacing a rate never rewrites
stored rows. Re-pricing stored rows is the explicit, logged ``python -m chatcore.money.reprice``.

Rates are ``Decimal``; text is parsed exactly (never through float). At most 10 decimals and 10
integer digits (the ``numeric(20, 10)`` column); a rate must be positive.

The CSV formats are in ``chatcore.money.fx_csv``; the SQL in ``chatcore.store.rates``.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
from uuid6 import uuid7

from chatcore import cli
from chatcore.money.fx_csv import (
    FORMATS, FxError, FxImportError, ParsedRate, parse_iso_date, parse_rate, read_rates,
)
from chatcore.store import rates


def _currency(code: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise FxError(f"currency {code!r} must be three capital letters (ISO 4217), like USD")
    return code


def _put(conn: psycopg.Connection, *, day: date, rate: Decimal, source: str, base: str, quote: str,
         replace: bool) -> str:
    """Insert one rate; 'added', 'unchanged' or 'replaced'. Raises FxError on a conflicting rate."""
    existing = rates.rate_dated(conn, base=base, quote=quote, day=day)
    if existing is None:
        rates.insert_rate(conn, rate_id=uuid7(), base=base, quote=quote, day=day, rate=rate, source=source)
        return "added"
    if existing["rate"] == rate:
        return "unchanged"
    if not replace:
        raise FxError(f"{base}/{quote} on {day} is already {existing['rate'].normalize()} "
                      f"({existing['source']}); pass --replace to change it to {rate}")
    rates.replace_rate(conn, rate_id=existing["id"], rate=rate, source=source)
    return "replaced"


def add_rate(conn: psycopg.Connection, day: date, rate: Decimal, source: str = "manual", *,
             base: str = "USD", quote: str = "ZAR", replace: bool = False) -> str:
    """Add one rate effective from ``day``; returns 'added', 'unchanged' or 'replaced'."""
    if not isinstance(rate, Decimal):
        raise FxError(f"a rate must be a Decimal, not {type(rate).__name__}")
    rate = parse_rate(str(rate))
    with conn.transaction():
        return _put(conn, day=day, rate=rate, source=source, base=_currency(base), quote=_currency(quote),
                    replace=replace)


def import_rates(conn: psycopg.Connection, parsed: list[ParsedRate], source: str, *, base: str = "USD",
                 quote: str = "ZAR", replace: bool = False, path: str = "<csv>") -> dict[str, int]:
    """Write parsed rates in one transaction; counts by outcome. Any conflict: nothing is written."""
    base, quote = _currency(base), _currency(quote)
    counts = {"added": 0, "unchanged": 0, "replaced": 0}
    errors: list[tuple[int, str]] = []
    with conn.transaction():
        for r in parsed:
            try:
                counts[_put(conn, day=r.effective_date, rate=r.rate, source=r.source or source, base=base,
                            quote=quote, replace=replace)] += 1
            except FxError as e:
                errors.append((r.line, str(e)))
        if errors:  # raising inside the transaction rolls it back: nothing is written
            raise FxImportError(path, errors)
    return counts


def _date_arg(text: str) -> date:
    try:
        return parse_iso_date(text)
    except FxError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _rate_arg(text: str) -> Decimal:
    try:
        return parse_rate(text)
    except FxError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    parser = cli.argument_parser("python -m chatcore.money.fx", "Add, import and list exchange rates.")
    parser.add_argument("--base", default="USD", help="base currency (default USD)")
    parser.add_argument("--quote", default="ZAR", help="quote currency (default ZAR): QUOTE per one BASE")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add one rate")
    add.add_argument("--date", required=True, type=_date_arg, help="effective date, YYYY-MM-DD")
    add.add_argument("--rate", required=True, type=_rate_arg, help="QUOTE per one BASE, e.g. 18.2345")
    add.add_argument("--source", default="manual", help="where the rate comes from")
    add.add_argument("--replace", action="store_true", help="change an existing rate of that date")
    imp = sub.add_parser("import", help="import a CSV of rates (all or nothing)")
    imp.add_argument("file")
    imp.add_argument("--format", choices=FORMATS, default="generic")
    imp.add_argument("--source", default=None, help="default: 'import <file name> (<format>)'")
    imp.add_argument("--replace", action="store_true", help="change existing rates that differ")
    imp.add_argument("--dry-run", action="store_true", help="check the file and show what would change")
    ls = sub.add_parser("list", help="list rates")
    ls.add_argument("--from", dest="from_day", type=_date_arg, default=None)
    ls.add_argument("--to", dest="to_day", type=_date_arg, default=None)
    args = parser.parse_args(argv)
    try:
        base, quote = _currency(args.base), _currency(args.quote)
        parsed = read_rates(args.file, args.format) if args.command == "import" else []  # before connecting
    except (FxError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    def work(conn: psycopg.Connection) -> None:
        if args.command == "add":
            outcome = add_rate(conn, args.date, args.rate, args.source, base=base, quote=quote, replace=args.replace)
            print(f"{outcome}: {base}/{quote} {args.date} {args.rate} ({args.source})")
        elif args.command == "import":
            source = args.source or f"import {Path(args.file).name} ({args.format})"
            with conn.transaction(force_rollback=args.dry_run):
                counts = import_rates(conn, parsed, source, base=base, quote=quote, replace=args.replace,
                                      path=args.file)
            days = sorted(r.effective_date for r in parsed)
            print(f"{'would import' if args.dry_run else 'imported'} {len(parsed)} rate(s) "
                  f"{days[0]} .. {days[-1]} from {args.file}: {counts['added']} added, "
                  f"{counts['unchanged']} unchanged, {counts['replaced']} replaced")
        else:
            rows = rates.list_rates(conn, base=base, quote=quote, from_day=args.from_day, to_day=args.to_day)
            print(f"{'effective':10}  {'rate':>16}  source")
            for r in rows:
                print(f"{r['effective_date'].isoformat():10}  {r['rate'].normalize():>16f}  {r['source']}")
            print(f"{len(rows)} {base}/{quote} rate(s)")

    return cli.run_with_connection(args, work, (FxError, OSError))


if __name__ == "__main__":
    sys.exit(main())
