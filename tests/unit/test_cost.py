"""The cost of a model call as a row stores it (``chatcore.money.cost``): the pinned price
(``chatcore.money.prices``) in USD, the turn's locked exchange rate, and the one rounding rule for stored
amounts. Figures are checked by hand, in ``Decimal`` only (the comparison with genai-prices for every
pinned model is tests/unit/test_pricing.py)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from chatcore.money.cost import MONEY, Cost, CostCalculator, ExchangeRate, stored_amounts
from chatcore.money.prices import PRICES_PATH, PriceBook, TokenUsage, UnknownModelPrice, default_price_book

FX = ExchangeRate(id=uuid.UUID("01800000-0000-7000-8000-000000000001"), rate=Decimal("18.2345"),
                  effective_date=date(2025, 10, 31))
AT = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
# 1200 uncached input, 30000 cache read, 5000 cache write (5 minutes), 800 output tokens
USAGE = TokenUsage(input_tokens=1200, output_tokens=800, cache_read_tokens=30000, cache_write_tokens=5000)
PER_MILLION = Decimal(1_000_000)


def entries(model: str) -> list[dict]:
    return [e for e in json.loads(PRICES_PATH.read_text())["models"] if e["model"] == model]


# --------------------------------------------------------------------------- the hand-checked figure


def test_hand_check_claude_sonnet_4_5_in_decimal():
    (entry,) = entries("claude-sonnet-4-5")  # one price period: it applies on any date from its start
    assert date.fromisoformat(entry["effective_from"]) <= AT.date()
    # below the 200k-token long-context tier (36,200 tokens in all), the base prices per million apply
    base = {k: Decimal(entry[k]["base"]) for k in ("input", "cache_read", "cache_write", "output")}
    assert base == {"input": Decimal("3"), "cache_read": Decimal("0.3"), "cache_write": Decimal("3.75"),
                    "output": Decimal("15")}
    assert all(entry[k]["tiers"][0]["start"] == 200_000 for k in base) and USAGE.total_input == 36_200
    by_hand = (Decimal(1200) * Decimal("3") + Decimal(30000) * Decimal("0.3") + Decimal(5000) * Decimal("3.75")
               + Decimal(800) * Decimal("15")) / PER_MILLION
    assert by_hand == Decimal("0.04335")
    priced = default_price_book().cost_usd("claude-sonnet-4-5", USAGE, AT)
    assert priced.usd == by_hand and priced.price.price_key == f"anthropic/claude-sonnet-4-5@{entry['effective_from']}"
    # dated ids and aliases of the model are the same price
    assert default_price_book().cost_usd("claude-sonnet-4-5-20250929", USAGE, AT).usd == by_hand


def test_the_price_period_in_effect_at_the_call_is_used():
    """claude-sonnet-4-6 changed price on 2026-03-13 (its long-context tier went away): a call is priced by
    the period in effect on its UTC day."""
    periods = sorted(entries("claude-sonnet-4-6"), key=lambda e: e["effective_from"])
    assert [e["effective_from"] for e in periods] == ["2023-01-01", "2026-03-13"]
    big = TokenUsage(input_tokens=250_000, output_tokens=1000)  # over 200k: the tier applies where there is one
    calc = CostCalculator(FX, {})
    before = calc.cost("claude-sonnet-4-6", big, datetime(2026, 3, 12, 23, 59, 59, tzinfo=UTC))
    after = calc.cost("claude-sonnet-4-6", big, datetime(2026, 3, 13, tzinfo=UTC))
    assert before.usd == (250_000 * Decimal("6") + 1000 * Decimal("22.5")) / PER_MILLION == Decimal("1.5225")
    assert after.usd == (250_000 * Decimal("3") + 1000 * Decimal("15")) / PER_MILLION == Decimal("0.765")
    assert (before.price_key, after.price_key) == ("anthropic/claude-sonnet-4-6@2023-01-01",
                                                   "anthropic/claude-sonnet-4-6@2026-03-13")
    # 01:00 on the 13th in UTC+2 is still the 12th in UTC
    early = calc.cost("claude-sonnet-4-6", big, datetime(2026, 3, 13, 1, 0, tzinfo=timezone(timedelta(hours=2))))
    assert early.price_key == before.price_key


# --------------------------------------------------------------------------- stored amounts


def test_stored_usd_is_rounded_to_ten_decimals_and_rands_are_the_stored_usd_times_the_rate():
    usd, zar = stored_amounts(Decimal("0.04335"), Decimal("18.2345"))
    assert (usd, zar) == (Decimal("0.0433500000"), Decimal("0.7904655750"))
    assert usd.as_tuple().exponent == zar.as_tuple().exponent == -10 == MONEY.as_tuple().exponent
    assert zar == usd * Decimal("18.2345")  # exact here: rounding changed nothing


def test_rands_are_rounded_once_from_the_stored_usd_not_from_the_unrounded_cost():
    raw = Decimal("0.00000000016")  # 1.6e-10 USD: stored as 2e-10
    usd, zar = stored_amounts(raw, Decimal("18.5"))
    assert usd == Decimal("0.0000000002")
    assert zar == Decimal("0.0000000037")  # 2e-10 x 18.5 = 3.7e-9, as a reader of the row can recompute
    assert zar != (raw * Decimal("18.5")).quantize(MONEY)  # 2.96e-9 -> 3.0e-9: not what is stored
    big = Decimal("1234.56789012345678")
    usd, zar = stored_amounts(big, Decimal("18.1234567891"))
    assert usd == Decimal("1234.5678901235") and zar == (usd * Decimal("18.1234567891")).quantize(MONEY)


def test_stored_amounts_never_go_through_float():
    usd, zar = stored_amounts(Decimal("0.1") + Decimal("0.2"), Decimal("1"))
    assert usd == zar == Decimal("0.3000000000") and isinstance(usd, Decimal) and isinstance(zar, Decimal)


# --------------------------------------------------------------------------- the calculator


def test_a_call_is_priced_with_the_pinned_price_and_the_locked_rate():
    book = default_price_book()
    key = "anthropic/claude-sonnet-4-5@" + entries("claude-sonnet-4-5")[0]["effective_from"]
    price_id = uuid.uuid4()
    calc = CostCalculator(FX, {key: price_id})
    cost = calc.cost("claude-sonnet-4-5", USAGE, AT)
    assert cost == Cost(usage=USAGE, usd=Decimal("0.0433500000"), zar=Decimal("0.7904655750"), price_key=key,
                        price_id=price_id)
    assert calc.book is book  # the packaged table unless one is given
    fields = calc.row_fields(cost)
    assert {k: fields[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")} == {
        "input_tokens": 1200, "output_tokens": 800, "cache_read_tokens": 30000, "cache_write_tokens": 5000}
    assert {k: fields[k] for k in ("cost_usd", "cost_in_rands", "price_id", "fx_rate_id", "fx_rate", "fx_rate_date")} \
        == {"cost_usd": cost.usd, "cost_in_rands": cost.zar, "price_id": price_id, "fx_rate_id": FX.id,
            "fx_rate": Decimal("18.2345"), "fx_rate_date": date(2025, 10, 31)}


def test_a_price_the_database_has_not_recorded_has_no_price_id():
    cost = CostCalculator(FX, {}).cost("claude-sonnet-4-5", USAGE, AT)
    assert cost.price_id is None and cost.price_key.startswith("anthropic/claude-sonnet-4-5@")


def test_without_a_time_the_call_is_priced_now():
    calc = CostCalculator(FX, {})
    now = calc.cost("claude-sonnet-4-5", USAGE)
    assert now.usd == calc.cost("claude-sonnet-4-5", USAGE, datetime.now(UTC)).usd == Decimal("0.0433500000")


def test_a_calculator_may_be_given_its_own_price_table():
    table = {"source": "test", "source_version": "0", "version": "t", "models": [
        {"provider": "anthropic", "model": "claude-test", "match_order": 0, "aliases": [{"equals": "claude-test"}],
         "effective_from": "2024-01-01", "input": "1", "output": "2", "cache_read": None, "cache_write": None}]}
    calc = CostCalculator(ExchangeRate(None, Decimal("20"), None), {}, PriceBook(table))
    cost = calc.cost("claude-test", TokenUsage(input_tokens=1_000_000, output_tokens=500_000, cache_read_tokens=10),
                     AT)
    # no cache prices: cache tokens are billed as input
    assert (cost.usd, cost.zar) == (Decimal("2.0000100000"), Decimal("40.0002000000"))
    assert calc.row_fields(cost)["fx_rate_id"] is None


def test_zero_tokens_cost_zero():
    cost = CostCalculator(FX, {}).cost("claude-sonnet-4-5", TokenUsage(), AT)
    assert cost.usd == cost.zar == 0 and cost.usd.as_tuple().exponent == -10


def test_an_unknown_model_is_refused_not_priced_at_zero():
    with pytest.raises(UnknownModelPrice, match="no pinned Anthropic price matches model id 'gpt-4o'"):
        CostCalculator(FX, {}).cost("gpt-4o", USAGE, AT)
