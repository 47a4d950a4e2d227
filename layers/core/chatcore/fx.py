"""Exchange rates (``fx_rates``): add, import and list USD/ZAR (or other) rates.

    python -m chatcore.fx add --date 2026-11-20 --rate 18.2345 [--source "SARB 10:30 rate"] [--replace]
    python -m chatcore.fx import rates.csv [--format generic|sarb] [--source ...] [--replace]
    python -m chatcore.fx list [--from 2026-11-01] [--to 2026-11-30]

A rate is ``quote`` units per one ``base`` unit (rands per US dollar), effective from its date
until the next rate's date. A turn uses the latest rate effective on or before its (UTC) day and
locks the rate and its date on every row it prices: adding or replacing a rate never rewrites
stored rows. Re-pricing stored rows is the explicit, logged ``python -m chatcore.reprice``.

Rates are ``Decimal``; text is parsed exactly (never through float). At most 10 decimals and 10
integer digits (the ``numeric(20, 10)`` column); a rate must be positive.

CSV formats (UTF-8, a BOM is ignored). Imports are all-or-nothing: every line is checked first and
every problem is reported with its line number; nothing is written if there is any.

``generic``: comma-separated, the header exactly ``date,rate`` (or ``date,rate,source``), one rate
per line: ``2026-11-20,18.2345``. Dates ``YYYY-MM-DD``; rates with a ``.`` decimal point, no
thousands separators, no blanks. Blank lines are not allowed, except at the end.

``sarb``: a time-series export from the South African Reserve Bank (series EXCX135, "Rand per US
Dollar", the weighted average of the banks' rates at about 10:30) or a bank's rate export.
- Delimiter ``,``, ``;`` or tab, taken from the header line. Title lines before the header are
  skipped (at most 20).
- The header names a date column, ``Date`` or ``Period``, and a rate column, one of ``Value``,
  ``Rand per US Dollar``, ``EXCX135``, ``USD/ZAR``, ``USDZAR``, ``ZAR per USD``, ``Rate`` (case and
  surrounding spaces/quotes ignored); other columns are ignored. Exactly one of each.
- Dates ``YYYY-MM-DD``, ``YYYY/MM/DD``, ``DD/MM/YYYY`` (South African order) or ``20 Nov 2026``.
- Rates with a ``.`` decimal point, or a ``,`` decimal comma when the delimiter is ``;`` or tab.
- An empty value, ``-``, ``..`` or ``n/a`` means no rate that day (a weekend or holiday): skipped.

The same date twice in one file is an error. A date already in the table with the same rate is
left alone (re-importing a file is harmless); with a different rate it is an error unless
``--replace`` is given.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from uuid6 import uuid7

from chatcore import cli

__all__ = ("FxError", "FxImportError", "ParsedRate", "parse_rate", "parse_generic", "parse_sarb", "read_rates",
           "add_rate", "import_rates", "list_rates", "rate_on", "main")

MAX_DECIMALS = 10
MAX_INTEGER_DIGITS = 10
MAX_PREAMBLE_LINES = 20
MAX_REPORTED_ERRORS = 50
FORMATS = ("generic", "sarb")

SARB_DATE_COLUMNS = ("date", "period")
SARB_RATE_COLUMNS = ("value", "rand per us dollar", "excx135", "usd/zar", "usdzar", "zar per usd", "rate")
NO_VALUE = ("", "-", "..", "n/a")


class FxError(ValueError):
    """A rate or a command is invalid."""


class FxImportError(FxError):
    """A rates file is invalid; ``errors`` lists (line number, message)."""

    def __init__(self, path: str, errors: list[tuple[int, str]]) -> None:
        self.path = path
        self.errors = errors
        shown = errors[:MAX_REPORTED_ERRORS]
        lines = [f"{path}:{line}: {message}" if line else f"{path}: {message}" for line, message in shown]
        if len(errors) > len(shown):
            lines.append(f"... and {len(errors) - len(shown)} more")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ParsedRate:
    line: int
    effective_date: date
    rate: Decimal
    source: str | None = None


_DECIMAL_RE = re.compile(r"^\d+(\.\d+)?$")


def parse_rate(text: str, *, decimal_comma: bool = False) -> Decimal:
    """An exact, positive Decimal from ``text`` (``18.2345``), within ``numeric(20, 10)``."""
    raw = text.strip()
    if decimal_comma:
        if "." in raw:
            raise FxError(f"rate {text!r}: use a decimal comma in this file, not a point")
        raw = raw.replace(",", ".", 1)
    if not _DECIMAL_RE.match(raw):
        raise FxError(f"rate {text!r} is not a plain decimal number like 18.2345")
    integer, _, fraction = raw.partition(".")
    if len(fraction) > MAX_DECIMALS:
        raise FxError(f"rate {text!r} has more than {MAX_DECIMALS} decimals")
    if len(integer.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise FxError(f"rate {text!r} is too large")
    try:
        value = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the regex already guarantees a number
        raise FxError(f"rate {text!r} is not a number") from None
    if value <= 0:
        raise FxError(f"rate {text!r} must be greater than zero")
    return value


def parse_iso_date(text: str) -> date:
    raw = text.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise FxError(f"date {text!r} is not YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise FxError(f"date {text!r} does not exist") from None


def _parse_sarb_date(text: str) -> date:
    raw = text.strip()
    for pattern, fmt in ((r"\d{4}-\d{2}-\d{2}", "%Y-%m-%d"), (r"\d{4}/\d{2}/\d{2}", "%Y/%m/%d"),
                         (r"\d{2}/\d{2}/\d{4}", "%d/%m/%Y"), (r"\d{1,2} [A-Za-z]{3} \d{4}", "%d %b %Y")):
        if re.fullmatch(pattern, raw):
            try:
                return datetime.strptime(raw, fmt).date()
            except ValueError:
                raise FxError(f"date {text!r} does not exist") from None
    raise FxError(f"date {text!r} is not YYYY-MM-DD, YYYY/MM/DD, DD/MM/YYYY or '20 Nov 2026'")


def _lines(text: str) -> list[str]:
    return text.removeprefix("\ufeff").splitlines()


def _checked(path, rates: list, errors: list) -> list:
    """The parsed rates of a file, or FxImportError with every problem (all or nothing)."""
    _check_duplicates(rates, errors)
    if not rates and not errors:
        errors.append((0, "no rates in the file"))
    if errors:
        raise FxImportError(path, sorted(errors))
    return rates


def _check_duplicates(rates: list[ParsedRate], errors: list[tuple[int, str]]) -> None:
    first: dict[date, int] = {}
    for r in rates:
        if r.effective_date in first:
            errors.append((r.line, f"date {r.effective_date} already given on line {first[r.effective_date]}"))
        else:
            first[r.effective_date] = r.line


def parse_generic(text: str, path: str = "<csv>") -> list[ParsedRate]:
    """Rates of a ``date,rate[,source]`` file; raises FxImportError listing every bad line."""
    lines = _lines(text)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise FxImportError(path, [(0, "the file is empty; expected a header line 'date,rate'")])
    errors: list[tuple[int, str]] = []
    header = [c.strip().lower() for c in next(csv.reader([lines[0]]))]
    if header not in (["date", "rate"], ["date", "rate", "source"]):
        raise FxImportError(path, [(1, f"the header must be 'date,rate' or 'date,rate,source', got {lines[0]!r}")])
    rates: list[ParsedRate] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            errors.append((number, "blank line"))
            continue
        cells = next(csv.reader([line]))
        if len(cells) != len(header):
            errors.append((number, f"expected {len(header)} fields ({','.join(header)}), got {len(cells)}: {line!r}"))
            continue
        try:
            day = parse_iso_date(cells[0])
            rate = parse_rate(cells[1])
        except FxError as e:
            errors.append((number, str(e)))
            continue
        source = (cells[2].strip() or None) if len(cells) == 3 else None
        rates.append(ParsedRate(number, day, rate, source))
    return _checked(path, rates, errors)


def _norm(cell: str) -> str:
    return " ".join(cell.strip().strip('"').strip().lower().split())


def _find_sarb_header(lines: list[str]) -> tuple[int, str, int, int] | None:
    for index, line in enumerate(lines[:MAX_PREAMBLE_LINES + 1]):
        for delimiter in (",", ";", "\t"):
            if delimiter not in line:
                continue
            cells = [_norm(c) for c in next(csv.reader([line], delimiter=delimiter))]
            dates = [i for i, c in enumerate(cells) if c in SARB_DATE_COLUMNS]
            values = [i for i, c in enumerate(cells) if c in SARB_RATE_COLUMNS]
            if dates or values:
                if len(dates) != 1 or len(values) != 1:
                    raise FxImportError("", [(index + 1, (
                        "the header needs exactly one date column (Date or Period) and exactly one rate "
                        f"column ({', '.join(SARB_RATE_COLUMNS)}); got {line!r}"))])
                return index, delimiter, dates[0], values[0]
    return None


def parse_sarb(text: str, path: str = "<csv>") -> list[ParsedRate]:
    """Rates of a SARB or bank export (see the module docstring); raises FxImportError."""
    lines = _lines(text)
    try:
        found = _find_sarb_header(lines)
    except FxImportError as e:
        raise FxImportError(path, e.errors) from None
    if found is None:
        raise FxImportError(path, [(0, (
            f"no header line in the first {MAX_PREAMBLE_LINES + 1} lines naming a date column (Date or "
            f"Period) and a rate column ({', '.join(SARB_RATE_COLUMNS)})"))])
    header_index, delimiter, date_col, rate_col = found
    width = len(next(csv.reader([lines[header_index]], delimiter=delimiter)))
    decimal_comma = delimiter != ","
    errors: list[tuple[int, str]] = []
    rates: list[ParsedRate] = []
    body = lines[header_index + 1:]
    while body and not body[-1].strip():
        body.pop()
    for number, line in enumerate(body, start=header_index + 2):
        if not line.strip():
            errors.append((number, "blank line"))
            continue
        cells = next(csv.reader([line], delimiter=delimiter))
        if len(cells) != width:
            errors.append((number, f"expected {width} fields like the header, got {len(cells)}: {line!r}"))
            continue
        try:
            day = _parse_sarb_date(cells[date_col])
        except FxError as e:
            errors.append((number, str(e)))
            continue
        if cells[rate_col].strip().lower() in NO_VALUE:
            continue  # no rate published that day
        try:
            rate = parse_rate(cells[rate_col], decimal_comma=decimal_comma)
        except FxError as e:
            errors.append((number, str(e)))
            continue
        rates.append(ParsedRate(number, day, rate))
    return _checked(path, rates, errors)


def read_rates(path: str | Path, fmt: str = "generic") -> list[ParsedRate]:
    if fmt not in FORMATS:
        raise FxError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise FxImportError(str(path), [(0, f"not UTF-8 text: {e}")]) from None
    return (parse_generic if fmt == "generic" else parse_sarb)(text, str(path))


def _currency(code: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise FxError(f"currency {code!r} must be three capital letters (ISO 4217), like USD")
    return code


SELECT_RATE = """
SELECT id, base, quote, effective_date, rate, source, created_at FROM fx_rates
WHERE base = %(base)s AND quote = %(quote)s AND effective_date = %(day)s
"""

INSERT_RATE = """
INSERT INTO fx_rates (id, base, quote, effective_date, rate, source)
VALUES (%(id)s, %(base)s, %(quote)s, %(day)s, %(rate)s, %(source)s)
"""

REPLACE_RATE = "UPDATE fx_rates SET rate = %(rate)s, source = %(source)s WHERE id = %(id)s"

RATE_ON = """
SELECT id, base, quote, effective_date, rate, source FROM fx_rates
WHERE base = %(base)s AND quote = %(quote)s AND effective_date <= %(day)s
ORDER BY effective_date DESC LIMIT 1
"""

LIST_RATES = """
SELECT id, base, quote, effective_date, rate, source, created_at FROM fx_rates
WHERE base = %(base)s AND quote = %(quote)s
  AND (%(from_day)s::date IS NULL OR effective_date >= %(from_day)s::date)
  AND (%(to_day)s::date IS NULL OR effective_date <= %(to_day)s::date)
ORDER BY effective_date
"""


def _put(conn: psycopg.Connection, *, day: date, rate: Decimal, source: str, base: str, quote: str,
         replace: bool) -> str:
    """Insert one rate; 'added', 'unchanged' or 'replaced'. Raises FxError on a conflicting rate."""
    with conn.cursor(row_factory=dict_row) as cur:
        existing = cur.execute(SELECT_RATE, {"base": base, "quote": quote, "day": day}).fetchone()
        if existing is None:
            cur.execute(INSERT_RATE, {"id": uuid7(), "base": base, "quote": quote, "day": day, "rate": rate,
                                      "source": source})
            return "added"
        if existing["rate"] == rate:
            return "unchanged"
        if not replace:
            raise FxError(f"{base}/{quote} on {day} is already {existing['rate'].normalize()} "
                          f"({existing['source']}); pass --replace to change it to {rate}")
        cur.execute(REPLACE_RATE, {"id": existing["id"], "rate": rate, "source": source})
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


def import_rates(conn: psycopg.Connection, rates: list[ParsedRate], source: str, *, base: str = "USD",
                 quote: str = "ZAR", replace: bool = False, path: str = "<csv>") -> dict[str, int]:
    """Write parsed rates in one transaction; counts by outcome. Any conflict: nothing is written."""
    base, quote = _currency(base), _currency(quote)
    counts = {"added": 0, "unchanged": 0, "replaced": 0}
    errors: list[tuple[int, str]] = []
    with conn.transaction():
        for r in rates:
            try:
                counts[_put(conn, day=r.effective_date, rate=r.rate, source=r.source or source, base=base,
                            quote=quote, replace=replace)] += 1
            except FxError as e:
                errors.append((r.line, str(e)))
        if errors:  # raising inside the transaction rolls it back: nothing is written
            raise FxImportError(path, errors)
    return counts


def rate_on(conn: psycopg.Connection, day: date, *, base: str = "USD", quote: str = "ZAR") -> dict[str, Any] | None:
    """The rate in effect on ``day``: the latest one effective on or before it."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(RATE_ON, {"base": base, "quote": quote, "day": day}).fetchone()


def list_rates(conn: psycopg.Connection, *, base: str = "USD", quote: str = "ZAR", from_day: date | None = None,
               to_day: date | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_RATES, {"base": base, "quote": quote, "from_day": from_day,
                                        "to_day": to_day}).fetchall()


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
    parser = argparse.ArgumentParser(prog="python -m chatcore.fx", description="Add, import and list exchange rates.")
    parser.add_argument("--database-url", default=None, help="default: $DATABASE_URL")
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
        rates: list[ParsedRate] = []
        if args.command == "import":
            rates = read_rates(args.file, args.format)  # fail on a bad file before connecting
        url = cli.database_url(args)
        if not url:
            return 2
        from chatcore import db

        with db.connect(url) as conn:
            if args.command == "add":
                outcome = add_rate(conn, args.date, args.rate, args.source, base=base, quote=quote,
                                   replace=args.replace)
                print(f"{outcome}: {base}/{quote} {args.date} {args.rate} ({args.source})")
            elif args.command == "import":
                source = args.source or f"import {Path(args.file).name} ({args.format})"
                if args.dry_run:
                    with conn.transaction(force_rollback=True):
                        counts = import_rates(conn, rates, source, base=base, quote=quote, replace=args.replace,
                                              path=args.file)
                else:
                    counts = import_rates(conn, rates, source, base=base, quote=quote, replace=args.replace,
                                          path=args.file)
                days = sorted(r.effective_date for r in rates)
                print(f"{'would import' if args.dry_run else 'imported'} {len(rates)} rate(s) "
                      f"{days[0]} .. {days[-1]} from {args.file}: {counts['added']} added, "
                      f"{counts['unchanged']} unchanged, {counts['replaced']} replaced")
            else:
                rows = list_rates(conn, base=base, quote=quote, from_day=args.from_day, to_day=args.to_day)
                print(f"{'effective':10}  {'rate':>16}  source")
                for r in rows:
                    print(f"{r['effective_date'].isoformat():10}  {r['rate'].normalize():>16f}  {r['source']}")
                print(f"{len(rows)} {base}/{quote} rate(s)")
    except FxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (OSError, psycopg.Error) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
