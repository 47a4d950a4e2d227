"""Exchange rates (``fx_rates``): QUOTE per one BASE, each effective from its date.

``rate_in_effect(day)`` is the one definition of "the rate in effect on a day": the latest rate
dated on or before it. The turn's first statement, ``rate_on`` and the re-pricing backfill all use it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row


def rate_in_effect(day_sql: str, base: str = "'USD'", quote: str = "'ZAR'") -> str:
    """A LATERAL subquery: the rate of ``base``/``quote`` in effect on the day ``day_sql`` (SQL)."""
    return f"""LATERAL (
    SELECT id, base, quote, effective_date, rate, source FROM fx_rates
    WHERE base = {base} AND quote = {quote} AND effective_date <= {day_sql}
    ORDER BY effective_date DESC LIMIT 1)"""


SELECT_RATE = """
SELECT id, base, quote, effective_date, rate, source, created_at FROM fx_rates
WHERE base = %(base)s AND quote = %(quote)s AND effective_date = %(day)s
"""

INSERT_RATE = """
INSERT INTO fx_rates (id, base, quote, effective_date, rate, source)
VALUES (%(id)s, %(base)s, %(quote)s, %(day)s, %(rate)s, %(source)s)
"""

REPLACE_RATE = "UPDATE fx_rates SET rate = %(rate)s, source = %(source)s WHERE id = %(id)s"

RATE_ON = f"SELECT fx.* FROM {rate_in_effect('%(day)s', '%(base)s', '%(quote)s')} fx"

LIST_RATES = """
SELECT id, base, quote, effective_date, rate, source, created_at FROM fx_rates
WHERE base = %(base)s AND quote = %(quote)s
  AND (%(from_day)s::date IS NULL OR effective_date >= %(from_day)s::date)
  AND (%(to_day)s::date IS NULL OR effective_date <= %(to_day)s::date)
ORDER BY effective_date
"""


def rate_dated(conn: psycopg.Connection, *, base: str, quote: str, day: date) -> dict[str, Any] | None:
    """The rate dated exactly ``day``, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_RATE, {"base": base, "quote": quote, "day": day}).fetchone()


def insert_rate(conn: psycopg.Connection, *, rate_id: UUID, base: str, quote: str, day: date, rate: Decimal,
                source: str) -> None:
    conn.execute(INSERT_RATE, {"id": rate_id, "base": base, "quote": quote, "day": day, "rate": rate,
                               "source": source})


def replace_rate(conn: psycopg.Connection, *, rate_id: UUID, rate: Decimal, source: str) -> None:
    conn.execute(REPLACE_RATE, {"id": rate_id, "rate": rate, "source": source})


def rate_on(conn: psycopg.Connection, day: date, *, base: str = "USD", quote: str = "ZAR") -> dict[str, Any] | None:
    """The rate in effect on ``day``: the latest one effective on or before it."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(RATE_ON, {"base": base, "quote": quote, "day": day}).fetchone()


def list_rates(conn: psycopg.Connection, *, base: str = "USD", quote: str = "ZAR", from_day: date | None = None,
               to_day: date | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_RATES, {"base": base, "quote": quote, "from_day": from_day,
                                        "to_day": to_day}).fetchall()
