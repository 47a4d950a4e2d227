"""Rates files: the CSV formats ``python -m chatcore.money.fx import`` reads, parsed exactly.

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

import csv
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from chatcore import days

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
    try:
        return days.parse_day(text.strip())
    except days.NotADay as e:
        raise FxError(f"date {text!r} " + ("does not exist" if e.no_such_day else "is not YYYY-MM-DD")) from None


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
