"""USD cost of Claude token usage from the pinned price table (``prices.json``).

Stdlib only: the table is pinned from genai-prices by ``python -m local.pin_prices`` and this
module reproduces genai-prices' ``calc_price`` for Anthropic exactly (same model matching, same
price period, same long-context tier rule, same Decimal arithmetic) without importing it.

Long-context tiers (genai-prices ``TieredPrices``): a price may be ``{"base", "tiers"}``; the
highest tier whose ``start`` is strictly below the request's TOTAL input tokens (uncached +
cache read + cache write) prices ALL tokens of that kind (input, output, cache read, cache
write each have their own tier list). At exactly ``start`` tokens the base price applies.

Nothing is rounded: each term is ``price * tokens / 1_000_000`` in the current Decimal context,
as genai-prices computes it. Round only for display.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

__all__ = (
    "TokenUsage",
    "Tier",
    "TieredPrice",
    "ModelPrice",
    "PricedUsage",
    "PriceBook",
    "UnknownModelPrice",
    "default_price_book",
    "PRICES_PATH",
)

PRICES_PATH = Path(__file__).with_name("prices.json")
# The four token counts stored with every model call and reported everywhere (cache_write_1h_tokens
# is a part of cache_write_tokens, for pricing only).
TOKEN_COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


class UnknownModelPrice(LookupError):
    """No pinned price matches the model id."""


@dataclass(frozen=True)
class TokenUsage:
    """Token counts of one model call, as Claude/agno report them.

    ``input_tokens`` is the UNCACHED input only; cache reads and writes are counted separately.
    ``cache_write_1h_tokens`` is the part of ``cache_write_tokens`` written with a one-hour TTL,
    which Anthropic bills at its own (higher) rate.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    # web searches the call made (Anthropic's server tool), billed per search on top of the tokens
    web_searches: int = 0

    def __post_init__(self) -> None:
        for name in (*TOKEN_COUNTS, "cache_write_1h_tokens", "web_searches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"TokenUsage.{name} must be a non-negative int, got {value!r}")
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError("TokenUsage.cache_write_1h_tokens is a part of cache_write_tokens")

    def __add__(self, other: object) -> TokenUsage:
        if not isinstance(other, TokenUsage):
            return NotImplemented
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            web_searches=self.web_searches + other.web_searches,
        )

    def __bool__(self) -> bool:
        """Whether any token was used."""
        return bool(self.input_tokens or self.output_tokens or self.cache_read_tokens or self.cache_write_tokens
                    or self.web_searches)

    def __radd__(self, other: object) -> TokenUsage:
        if other == 0:  # sum()
            return self
        return NotImplemented

    @property
    def total_input(self) -> int:
        """Total prompt size: uncached + cache read + cache write (genai-prices' ``input_tokens``)."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


@dataclass(frozen=True)
class Tier:
    start: int
    """The tier applies when total input tokens are strictly greater than ``start``."""
    price: Decimal
    """USD per million tokens."""


@dataclass(frozen=True)
class TieredPrice:
    base: Decimal
    tiers: tuple[Tier, ...]
    """Ascending by ``start``."""

    def rate(self, total_input_tokens: int) -> Decimal:
        for tier in reversed(self.tiers):
            if total_input_tokens > tier.start:
                return tier.price
        return self.base


Price = Decimal | TieredPrice


@dataclass(frozen=True)
class ModelPrice:
    """One pinned price period of one model. Prices are USD per million tokens."""

    provider: str
    model: str
    effective_from: date
    input: Price
    output: Price
    cache_read: Price | None
    """``None``: the model has no cache-read price; those tokens are billed as input."""
    cache_write: Price | None
    """``None``: the model has no cache-write price; those tokens are billed as input."""
    version: str
    """Version of the price table this came from (short sha256 of its entries)."""
    cache_write_1h: Price | None = None
    """A one-hour cache write (genai-prices' ``cache_write_1h_mtok``, which it does not apply itself);
    ``None``: twice the input price, Anthropic's rule."""
    web_searches_kcount: Decimal | None = None
    """USD per 1,000 web searches (genai-prices' ``web_searches_kcount``, which it does not apply itself)."""

    @property
    def price_key(self) -> str:
        return f"{self.provider}/{self.model}@{self.effective_from.isoformat()}"

    def rate(self, price: Price | None, total_input_tokens: int) -> Decimal | None:
        if isinstance(price, TieredPrice):
            return price.rate(total_input_tokens)
        return price

    def web_search_cost_usd(self, searches: int) -> Decimal:
        """USD cost of ``searches`` web searches, unrounded (a model without a per-search price cannot search)."""
        if not searches:
            return Decimal(0)
        if self.web_searches_kcount is None:
            raise UnknownModelPrice(f"no pinned web search price for {self.price_key}")
        return self.web_searches_kcount * Decimal(searches) / 1000

    def cost_usd(self, usage: TokenUsage) -> Decimal:
        """USD cost of ``usage`` at this price, unrounded: its tokens' identical to genai-prices (which knows
        only five-minute cache writes); one-hour writes at their own rate and web searches per search
        (``web_search_cost_usd``), added on top."""
        return self._tokens_cost_usd(usage) + self.web_search_cost_usd(usage.web_searches)

    def _tokens_cost_usd(self, usage: TokenUsage) -> Decimal:
        # the tier is chosen by the whole prompt, 1h writes included
        total_input = usage.total_input
        if not usage.cache_write_1h_tokens:
            return self._cost_usd(usage, total_input)
        five_minutes = replace(usage, cache_write_tokens=usage.cache_write_tokens - usage.cache_write_1h_tokens,
                               cache_write_1h_tokens=0)
        rate = (self.rate(self.cache_write_1h, total_input) if self.cache_write_1h is not None
                else 2 * self.rate(self.input, total_input))
        return self._cost_usd(five_minutes, total_input) + rate * Decimal(usage.cache_write_1h_tokens) / _PER_TOKENS

    def _cost_usd(self, usage: TokenUsage, total_input: int) -> Decimal:
        # Tokens of a kind without its own price roll up into plain input (genai-prices prices the
        # input leaf as total input minus the more specific kinds that ARE priced).
        input_count = usage.input_tokens
        if self.cache_read is None:
            input_count += usage.cache_read_tokens
        if self.cache_write is None:
            input_count += usage.cache_write_tokens
        # Same terms, order and operations as genai-prices' ModelPrice.calc_price.
        terms = (
            (self.input, input_count),
            (self.cache_write, usage.cache_write_tokens),
            (self.cache_read, usage.cache_read_tokens),
            (self.output, usage.output_tokens),
        )
        total = Decimal(0)
        for price, count in terms:
            if price is None:
                continue
            rate = self.rate(price, total_input)
            total += rate * Decimal(count) / _PER_TOKENS
        return total


_PER_TOKENS = 1_000_000


@dataclass(frozen=True)
class PricedUsage:
    usd: Decimal
    price: ModelPrice


@dataclass(frozen=True)
class _Rule:
    kind: str
    value: str

    def matches(self, ref: str) -> bool:  # ref is already lower-cased
        if self.kind == "regex":
            return re.search(self.value, ref) is not None
        value = self.value.lower()
        if self.kind == "starts_with":
            return ref.startswith(value)
        if self.kind == "equals":
            return ref == value
        if self.kind == "contains":
            return value in ref
        if self.kind == "ends_with":
            return ref.endswith(value)
        raise ValueError(f"unknown match rule {self.kind!r}")


@dataclass(frozen=True)
class _Model:
    model: str
    order: int
    rules: tuple[_Rule, ...]
    periods: tuple[ModelPrice, ...]
    """Ascending by ``effective_from``."""

    def matches(self, ref: str) -> bool:
        return any(rule.matches(ref) for rule in self.rules)

    def period(self, at: datetime) -> ModelPrice:
        # genai-prices StartDateConstraint: UTC date of the request (naive = UTC) >= start date;
        # the last active period wins, and if none is active the first one is used.
        day = (at.astimezone(UTC) if at.tzinfo is not None else at).date()
        chosen = self.periods[0]
        for period in self.periods:
            if day >= period.effective_from:
                chosen = period
        return chosen


# genai-prices' fallback for compact dated refs (``claude-x-20250929`` -> ``claude-x-2025-09-29``)
_COMPACT_DATE_RE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


def _normalize_compact_date(ref: str) -> str:
    def replace(match: re.Match[str]) -> str:
        year, month, day = (int(match.group(i)) for i in range(2, 5))
        try:
            date(year, month, day)
        except ValueError:
            return match.group(0)
        return f"{match.group(1)}{year:04d}-{month:02d}-{day:02d}"

    return _COMPACT_DATE_RE.sub(replace, ref)


def _parse_price(raw: Any) -> Price | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return Decimal(raw)
    tiers = tuple(Tier(start=int(t["start"]), price=Decimal(t["price"])) for t in raw["tiers"])
    if [t.start for t in tiers] != sorted(t.start for t in tiers):
        raise ValueError(f"tiers not ascending: {raw!r}")
    return TieredPrice(base=Decimal(raw["base"]), tiers=tiers)


class PriceBook:
    """The pinned price table; ``find`` and ``cost_usd`` mirror genai-prices for provider anthropic."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.source: str = data["source"]
        self.source_version: str = data["source_version"]
        self.version: str = data["version"]
        self._entries: list[dict[str, Any]] = list(data["models"])
        if data.get("per_tokens", _PER_TOKENS) != _PER_TOKENS:
            raise ValueError("prices.json must be priced per million tokens")
        grouped: dict[str, list[dict[str, Any]]] = {}
        for entry in data["models"]:
            grouped.setdefault(entry["model"], []).append(entry)
        models: list[_Model] = []
        for model_id, entries in grouped.items():
            first = entries[0]
            periods = tuple(
                sorted(
                    (
                        ModelPrice(
                            provider=e["provider"],
                            model=model_id,
                            effective_from=date.fromisoformat(e["effective_from"]),
                            input=_parse_price(e["input"]),
                            output=_parse_price(e["output"]),
                            cache_read=_parse_price(e["cache_read"]),
                            cache_write=_parse_price(e["cache_write"]),
                            version=self.version,
                            cache_write_1h=_parse_price((e.get("not_applied") or {}).get("cache_write_1h_mtok")),
                            web_searches_kcount=_parse_price((e.get("not_applied") or {}).get("web_searches_kcount")),
                        )
                        for e in entries
                    ),
                    key=lambda p: p.effective_from,
                )
            )
            rules = tuple(_Rule(kind, value) for alias in first["aliases"] for kind, value in alias.items())
            models.append(_Model(model=model_id, order=first["match_order"], rules=rules, periods=periods))
        # genai-prices takes the first model, in its own list order, whose rules match.
        models.sort(key=lambda m: m.order)
        self._models: tuple[_Model, ...] = tuple(models)

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceBook:
        with open(path or PRICES_PATH, encoding="utf-8") as f:
            return cls(json.load(f))

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m.model for m in self._models)

    def _match(self, ref: str) -> _Model | None:
        for model in self._models:
            if model.matches(ref):
                return model
        return None

    def find(self, model_id: str, at: datetime) -> ModelPrice:
        """The price genai-prices would use for ``model_id`` (provider anthropic) at ``at``.

        ``at`` is the request time; a naive datetime is taken as UTC.
        """
        if not isinstance(at, datetime):
            raise TypeError(f"at must be a datetime, got {type(at).__name__}")
        ref = model_id.lower()
        model = self._match(ref)
        if model is None:
            normalized = _normalize_compact_date(ref)
            if normalized != ref:
                model = self._match(normalized)
        if model is None:
            raise UnknownModelPrice(
                f"no pinned Anthropic price matches model id {model_id!r} "
                f"(prices.json version {self.version}, from {self.source} {self.source_version}); "
                "upgrade genai-prices and re-run `python -m local.pin_prices`"
            )
        return model.period(at)

    def price_rows(self) -> list[dict[str, Any]]:
        """One row per pinned entry for the prices table (keyed by ``price_key``)."""
        return [
            {
                "price_key": f"{e['provider']}/{e['model']}@{e['effective_from']}",
                "provider": e["provider"],
                "model": e["model"],
                "effective_from": date.fromisoformat(e["effective_from"]),
                "entry": e,
                "source": f"{self.source} {self.source_version}",
            }
            for e in self._entries
        ]

    def cost_usd(self, model_id: str, usage: TokenUsage, at: datetime) -> PricedUsage:
        price = self.find(model_id, at)
        return PricedUsage(usd=price.cost_usd(usage), price=price)


@cache
def default_price_book() -> PriceBook:
    """The packaged ``prices.json``, loaded once per process."""
    return PriceBook.load()
