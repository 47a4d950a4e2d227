"""The cost of a model call's tokens in US dollars and rands, as a row stores it.

``CostCalculator`` prices token usage with the pinned price table (``chatcore.money.prices``) and
the one exchange rate a turn locks; ``stored_amounts`` is the one rounding rule for stored costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from chatcore.money.prices import PriceBook, TokenUsage, default_price_book


# The scale of the numeric(20,10) cost columns: what a row stores, and so what totals add up.
MONEY = Decimal("1e-10")


def stored_amounts(usd: Decimal, rate: Decimal) -> tuple[Decimal, Decimal]:
    """A row's cost as stored: USD at the columns' scale, and rands = that stored USD x the rate,
    at the same scale (so cost_in_rands is exactly cost_usd x fx_rate, rounded once)."""
    usd = usd.quantize(MONEY)
    return usd, (usd * rate).quantize(MONEY)


@dataclass(frozen=True)
class ExchangeRate:
    """The USD/ZAR rate a turn uses, locked on every row it prices."""

    id: UUID | None
    rate: Decimal
    effective_date: date | None


@dataclass(frozen=True)
class Cost:
    usage: TokenUsage
    usd: Decimal
    zar: Decimal
    price_key: str | None
    price_id: UUID | None
    # the web searches' part of usd and zar (stored_amounts of their unrounded cost)
    web_search_usd: Decimal = Decimal(0)
    web_search_zar: Decimal = Decimal(0)


class CostCalculator:
    """Prices model calls with the pinned price table and one exchange rate."""

    def __init__(self, fx: ExchangeRate, price_ids: dict[str, UUID], book: PriceBook | None = None):
        self.fx = fx
        self.price_ids = price_ids
        self.book = book or default_price_book()

    def cost(self, model_id: str, usage: TokenUsage, at: datetime | None = None) -> Cost:
        priced = self.book.cost_usd(model_id, usage, at or datetime.now(timezone.utc))
        key = priced.price.price_key
        usd, zar = stored_amounts(priced.usd, self.fx.rate)
        search_usd, search_zar = stored_amounts(priced.price.web_search_cost_usd(usage.web_searches), self.fx.rate)
        return Cost(usage=usage, usd=usd, zar=zar, price_key=key, price_id=self.price_ids.get(key),
                    web_search_usd=search_usd, web_search_zar=search_zar)

    def row_fields(self, cost: Cost) -> dict[str, Any]:
        """The columns of a message (the messages table, chat_events) that record tokens, cost, price
        and rate."""
        return {
            "input_tokens": cost.usage.input_tokens, "output_tokens": cost.usage.output_tokens,
            "cache_read_tokens": cost.usage.cache_read_tokens,
            "cache_write_tokens": cost.usage.cache_write_tokens,
            "cache_write_1h_tokens": cost.usage.cache_write_1h_tokens,
            "cost_usd": cost.usd, "cost_in_rands": cost.zar, "price_id": cost.price_id,
            "web_searches": cost.usage.web_searches, "web_search_cost_usd": cost.web_search_usd,
            "web_search_cost_in_rands": cost.web_search_zar,
            "fx_rate_id": self.fx.id, "fx_rate": self.fx.rate, "fx_rate_date": self.fx.effective_date,
        }
