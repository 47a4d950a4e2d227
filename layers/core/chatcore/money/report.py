"""Spend report from the daily rollup: by day, agent/team, model or user, as text, CSV and a PNG chart.

    python -m chatcore.money.report --from 2026-11-01 --to 2026-11-30 [--by day|agent|model|user]
                              [--csv spend.csv] [--png spend.png] [--no-rollup]

Reads ``daily_costs`` (UTC days, inclusive range). By default an incremental rollup runs first, so
the figures include everything stored up to now; with ``--no-rollup`` they are as of the last
rollup, and the report says when that was. The text rounds for reading (ZAR to the cent, USD to
4 decimals); the CSV carries the exact sums (10 decimals). ``--png`` draws spend in rands per day,
stacked by the ``--by`` dimension; it needs matplotlib (a dev dependency), imported only then.

An operator's tool: no Lambda function imports this module.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from chatcore import cli
from chatcore.money import rollup
from chatcore.store import usage
from chatcore.wire.amounts import decimal_string

DIMENSIONS = tuple(usage.REPORT_KEYS)
METRICS = usage.REPORT_METRICS
MAX_SERIES = 8


@dataclass
class Report:
    from_day: date
    to_day: date
    by: str
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    as_of: Any = None
    series: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key_names(self) -> list[str]:
        return [name for _, name in usage.REPORT_KEYS[self.by]]


def build(conn: psycopg.Connection, from_day: date, to_day: date, by: str = "day") -> Report:
    """The figures of the range from daily_costs; for ``by='day'`` every day appears (zeros included)."""
    if by not in DIMENSIONS:
        raise ValueError(f"--by must be one of {', '.join(DIMENSIONS)}")
    if from_day > to_day:
        raise ValueError(f"from {from_day} is after to {to_day}")
    params = {"from_day": from_day, "to_day": to_day}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(usage.daily_costs_by(by), params).fetchall()
        series = cur.execute(usage.daily_costs_by(by, per_day=True), params).fetchall()
    zero = {m: (Decimal(0) if m.startswith("cost") else 0) for m in METRICS}
    if by == "day":
        found = {r["day"]: r for r in rows}
        rows = [found.get(from_day + timedelta(days=i), {"day": from_day + timedelta(days=i), **zero})
                for i in range((to_day - from_day).days + 1)]
    total = {m: sum((r[m] for r in rows), zero[m]) for m in METRICS}
    return Report(from_day, to_day, by, rows, total, rollup.last_watermark(conn), series)


def _label(report: Report, row: dict[str, Any]) -> str:
    if report.by == "agent":
        return f"{row['kind']}:{row['name']}"
    value = row[report.key_names[0]]
    return value.isoformat() if isinstance(value, date) else (str(value) or "(none)")


def _round(value: Decimal, places: str) -> str:
    return decimal_string(value.quantize(Decimal(places), rounding=ROUND_HALF_UP))


def render(report: Report) -> str:
    head = f"Spend {report.from_day} .. {report.to_day} by {report.by} (UTC days"
    head += f"; rollup as of {report.as_of:%Y-%m-%d %H:%M:%S %Z})" if report.as_of else "; never rolled up)"
    columns = [report.by, "turns", "failed", "input", "output", "cache read", "cache write", "USD", "ZAR"]
    lines = []
    for row in [*report.rows, {**report.total, "_label": "total"}]:
        label = row.get("_label") or _label(report, row)
        lines.append([label, str(row["turns"]), str(row["failed_turns"]), f"{row['input_tokens']:,}",
                      f"{row['output_tokens']:,}", f"{row['cache_read_tokens']:,}", f"{row['cache_write_tokens']:,}",
                      _round(row["cost_usd"], "0.0001"), _round(row["cost_in_rands"], "0.01")])
    widths = [max(len(columns[i]), *(len(line[i]) for line in lines)) for i in range(len(columns))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))

    rule = "  ".join("-" * w for w in widths)
    body = [fmt(line) for line in lines[:-1]]
    return "\n".join([head, fmt(columns), rule, *body, rule, fmt(lines[-1])])


def write_csv(report: Report, path: str | Path) -> None:
    """One line per group with the exact sums; no total line (sum the column)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*report.key_names, *METRICS])
        for row in report.rows:
            keys = [row[k].isoformat() if isinstance(row[k], date) else row[k] for k in report.key_names]
            writer.writerow([*keys, *(decimal_string(row[m]) if isinstance(row[m], Decimal) else row[m]
                                      for m in METRICS)])


def write_png(report: Report, path: str | Path) -> None:
    """Spend in rands per day, stacked by the report's dimension (top series, the rest as 'other')."""
    import matplotlib  # a dev dependency, imported only for --png

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [report.from_day + timedelta(days=i) for i in range((report.to_day - report.from_day).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    by_label: dict[str, list[Decimal]] = {}
    for row in report.series:
        label = "spend" if report.by == "day" else _label(report, row)
        by_label.setdefault(label, [Decimal(0)] * len(days))[index[row["x_day"]]] += row["cost_in_rands"]
    ranked = sorted(by_label, key=lambda k: sum(by_label[k]), reverse=True)
    if len(ranked) > MAX_SERIES:
        other = [sum(vals) for vals in zip(*(by_label[k] for k in ranked[MAX_SERIES - 1:]))]
        ranked = ranked[:MAX_SERIES - 1]
        by_label = {k: by_label[k] for k in ranked} | {"other": other}
        ranked.append("other")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(days) + 2), 4.5), dpi=100)
    bottom = [0.0] * len(days)
    for label in ranked:
        values = [float(v) for v in by_label[label]]  # float only for plotting
        ax.bar(days, values, bottom=bottom, label=label, width=0.8)
        bottom = [b + v for b, v in zip(bottom, values)]
    total = _round(report.total["cost_in_rands"], "0.01")
    ax.set_title(f"Spend {report.from_day} .. {report.to_day} by {report.by}: R{total}")
    ax.set_ylabel("ZAR per day")
    if ranked and report.by != "day":
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)



def main(argv: list[str] | None = None) -> int:
    parser = cli.argument_parser("python -m chatcore.money.report", "Spend report from daily_costs.")
    parser.add_argument("--from", dest="from_day", required=True, type=cli.day, help="first UTC day (YYYY-MM-DD)")
    parser.add_argument("--to", dest="to_day", required=True, type=cli.day, help="last UTC day, inclusive")
    parser.add_argument("--by", choices=DIMENSIONS, default="day")
    parser.add_argument("--csv", dest="csv_path", default=None, help="also write the figures as CSV")
    parser.add_argument("--png", dest="png_path", default=None, help="also draw a chart (needs matplotlib)")
    parser.add_argument("--no-rollup", action="store_true", help="report as of the last rollup")
    args = parser.parse_args(argv)
    if args.from_day > args.to_day:
        parser.error("--from is after --to")
    built: list[Report] = []

    def work(conn: psycopg.Connection) -> None:
        if not args.no_rollup:
            rollup.incremental(conn)
        built.append(build(conn, args.from_day, args.to_day, args.by))

    code = cli.run_with_connection(args, work)
    if code:
        return code
    report = built[0]
    print(render(report))
    if args.csv_path:
        write_csv(report, args.csv_path)
        print(f"wrote {args.csv_path}")
    if args.png_path:
        try:
            write_png(report, args.png_path)
        except ImportError:
            print("error: --png needs matplotlib (uv sync --group dev)", file=sys.stderr)
            return 1
        print(f"wrote {args.png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
