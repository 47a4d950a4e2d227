"""How an amount is written for a client: the one rule for turning a ``Decimal`` into text.

Postgres' ``numeric(20, 10)`` zero arrives as ``Decimal("0E-10")`` and ``str`` of it is ``"0E-10"``,
which no client parses as money and no generated model expects next to ``"0.0002918000"``. Every
decimal the API sends (JSON bodies, the turn's events, problem documents, the report) goes through
``decimal_string``: plain digits with the value's own scale, never an exponent.
"""

from __future__ import annotations

from decimal import Decimal

# What a decimal string looks like on the wire (the OpenAPI document states it for every amount).
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


def decimal_string(value: Decimal | int | str) -> str:
    """``value`` as plain decimal digits: ``Decimal("0E-10")`` -> ``"0.0000000000"``,
    ``Decimal("1E+2")`` -> ``"100"``; never an exponent."""
    amount = value if isinstance(value, Decimal) else Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return format(amount, "f")
