"""Re-pricing backfill: recompute the cost of stored rows, explicitly and with a log.

    python -m chatcore.money.reprice --from 2026-11-01 --to 2026-11-20 --dry-run     # show what would change
    python -m chatcore.money.reprice --from 2026-11-01 --to 2026-11-20 --yes [--reason "SARB rates imported"]

Stored costs never change by themselves: a row keeps the price (``price_id``) and the USD/ZAR
rate (``fx_rate``, ``fx_rate_date``, ``fx_rate_id``) it was priced with. This command is the one
way to re-price history. For every priced row (``role = 'assistant'`` with a ``model_id``)
created in the UTC days ``--from``..``--to``, it recomputes, exactly as a turn does:

- ``cost_usd`` = the pinned price table (``chatcore/money/prices.json``, the price period in effect at
  the row's ``created_at``) x the row's tokens, to 10 decimals;
- ``cost_in_rands`` = ``cost_usd`` x the USD/ZAR rate effective on the row's UTC day (the latest
  rate dated on or before it), to 10 decimals;
- ``price_id``, ``fx_rate_id``, ``fx_rate``, ``fx_rate_date`` to match;

then the ``cost_usd``/``cost_in_rands`` of the runs holding changed rows (a turn's run totals its
own and its member runs' rows; a member run its own) and ``daily_costs`` for the range. Tokens
are never changed. Everything happens in one transaction, with a ``cost_backfills`` row recording
who, when, the range, the price version, rows examined/changed, runs changed and the old and new
totals. Without ``--yes`` it only shows what would change (as ``--dry-run`` does) and refuses.
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from decimal import Decimal
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from uuid6 import uuid7

from chatcore import cli, days
from chatcore.money import rollup
from chatcore.money.cost import stored_amounts
from chatcore.money.prices import PriceBook, TokenUsage, UnknownModelPrice, default_price_book
from chatcore.store import backfills, catalog
from chatcore.store.usage import LOCK_COSTS


class RepriceError(ValueError):
    """The range cannot be re-priced (unknown model, no exchange rate, bad range)."""


@dataclass
class BackfillResult:
    from_day: date
    to_day: date
    dry_run: bool
    price_version: str
    rows_examined: int = 0
    rows_changed: int = 0
    runs_changed: int = 0
    old_usd: Decimal = Decimal(0)
    new_usd: Decimal = Decimal(0)
    old_zar: Decimal = Decimal(0)
    new_zar: Decimal = Decimal(0)
    backfill_id: UUID | None = None

    def describe(self) -> str:
        verb = "would change" if self.dry_run else "changed"
        text = (f"{self.from_day} .. {self.to_day}: {self.rows_examined} priced row(s) examined, "
                f"{self.rows_changed} {verb}; USD {self.old_usd} -> {self.new_usd}; "
                f"ZAR {self.old_zar} -> {self.new_zar} (prices version {self.price_version})")
        if not self.dry_run:
            text += f"; {self.runs_changed} run total(s) updated; logged as cost_backfills {self.backfill_id}"
        return text


def reprice(conn: psycopg.Connection, from_day: date, to_day: date, *, dry_run: bool, performed_by: str,
            reason: str | None = None, book: PriceBook | None = None) -> BackfillResult:
    """Re-price the priced rows of the UTC days ``from_day``..``to_day``; one transaction.

    With ``dry_run`` nothing is written (not even the log row). Raises RepriceError before writing
    anything if a row's model has no pinned price or a day has no USD/ZAR rate.
    """
    if from_day > to_day:
        raise RepriceError(f"from {from_day} is after to {to_day}")
    if not performed_by.strip():
        raise RepriceError("say who performs the backfill")
    book = book or default_price_book()
    result = BackfillResult(from_day, to_day, dry_run, book.version)
    with conn.transaction(force_rollback=dry_run):
        conn.execute(LOCK_COSTS)
        price_ids = catalog.sync_prices(conn, book.price_rows(), book.version)
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(backfills.ROWS_TO_PRICE, {"start": days.day_start(from_day),
                                                         "end": days.day_start(to_day + timedelta(days=1))}).fetchall()
        changes: list[tuple] = []
        changed_runs: set[UUID] = set()
        problems: list[str] = []
        for row in rows:
            if row["new_fx_rate_id"] is None:
                day = row["created_at"].astimezone(UTC).date()
                problems.append(f"row {row['id']}: no USD/ZAR rate effective on or before {day}")
                continue
            usage = TokenUsage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
                               row["cache_write_tokens"], row["cache_write_1h_tokens"], row["web_searches"])
            try:
                priced = book.cost_usd(row["model_id"], usage, row["created_at"])
            except UnknownModelPrice as e:
                problems.append(f"row {row['id']}: {e}")
                continue
            usd, zar = stored_amounts(priced.usd, row["new_fx_rate"])
            # the searches' share of the cost, kept beside it (the row, /usage and the rollup read it)
            search_usd, search_zar = stored_amounts(priced.price.web_search_cost_usd(usage.web_searches),
                                                    row["new_fx_rate"])
            price_id = price_ids[priced.price.price_key]
            result.old_usd += row["cost_usd"]
            result.old_zar += row["cost_in_rands"]
            result.new_usd += usd
            result.new_zar += zar
            new = (usd, zar, price_id, row["new_fx_rate_id"], row["new_fx_rate"], row["new_fx_rate_date"],
                   search_usd, search_zar)
            old = (row["cost_usd"], row["cost_in_rands"], row["price_id"], row["fx_rate_id"], row["fx_rate"],
                   row["fx_rate_date"], row["web_search_cost_usd"], row["web_search_cost_in_rands"])
            if new != old:
                changes.append((row["id"], *new))
                changed_runs.add(row["run_id"])
        if problems:
            more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
            raise RepriceError("cannot re-price:\n  " + "\n  ".join(problems[:10]) + more)
        result.rows_examined = len(rows)
        result.rows_changed = len(changes)
        if changes:
            conn.execute(backfills.CREATE_CHANGES)
            with conn.cursor() as cur:
                with cur.copy(backfills.COPY_CHANGES) as copy:
                    for change in changes:
                        copy.write_row(change)
            conn.execute(backfills.APPLY_CHANGES)
            result.runs_changed = conn.execute(backfills.RUN_TOTALS, {"run_ids": list(changed_runs)}).rowcount
            rollup.rollup(conn, from_day, to_day)
        if not dry_run:
            result.backfill_id = uuid7()
            conn.execute(backfills.INSERT_BACKFILL, {
                "id": result.backfill_id, "performed_by": performed_by, "reason": reason, "from_day": from_day,
                "to_day": to_day, "price_version": book.version, "rows_examined": result.rows_examined,
                "rows_changed": result.rows_changed, "runs_changed": result.runs_changed,
                "old_cost_usd": result.old_usd, "new_cost_usd": result.new_usd,
                "old_cost_in_rands": result.old_zar, "new_cost_in_rands": result.new_zar,
            })
    return result


def main(argv: list[str] | None = None) -> int:
    parser = cli.argument_parser("python -m chatcore.money.reprice",
                                 "Re-price stored rows from the pinned prices and the rates in effect.")
    parser.add_argument("--from", dest="from_day", required=True, type=cli.day, help="first UTC day (YYYY-MM-DD)")
    parser.add_argument("--to", dest="to_day", required=True, type=cli.day, help="last UTC day, inclusive")
    parser.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    parser.add_argument("--yes", action="store_true", help="really rewrite the rows (required unless --dry-run)")
    parser.add_argument("--by", dest="performed_by", default=None, help="who runs it (default: the OS user)")
    parser.add_argument("--reason", default=None, help="why, recorded in cost_backfills")
    args = parser.parse_args(argv)
    performed_by = args.performed_by or os.environ.get("USER") or getpass.getuser()
    dry_run = args.dry_run or not args.yes

    def work(conn: psycopg.Connection) -> int:
        result = reprice(conn, args.from_day, args.to_day, dry_run=dry_run, performed_by=performed_by,
                         reason=args.reason)
        print(("dry run: " if dry_run else "re-priced: ") + result.describe())
        if not args.dry_run and not args.yes:
            print("refusing to rewrite stored costs without --yes (nothing was written)", file=sys.stderr)
            return 2
        return 0

    return cli.run_with_connection(args, work, (RepriceError,))


if __name__ == "__main__":
    sys.exit(main())
